/*
 * reaper: run a program as our child and reap every orphan it leaves, as an init would.
 *
 * Usage: reaper PROGRAM [ARG...]
 *
 * Some supervisors (monit) start their services as daemons: double fork, so the
 * service's parent becomes the nearest "child subreaper", else PID 1. A killed
 * service stays a zombie until that process reaps it, and monit counts a zombie
 * as still running. On a real system PID 1 reaps at once; in a container or VM it
 * may reap only now and then (seen here: about 2 s), which would be charged to
 * the supervisor. This wrapper declares itself a child subreaper
 * (PR_SET_CHILD_SUBREAPER), runs PROGRAM and reaps whatever ends under it,
 * blocking in waitpid() (no polling), so the bench measures the supervisor, not
 * the machine's PID 1.
 *
 * SIGTERM, SIGINT and SIGHUP are forwarded to PROGRAM; the reaper exits with
 * PROGRAM's status once PROGRAM has ended. Orphans still running then are
 * re-parented to the next subreaper or PID 1 (the bench kills them by identity).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t child = 0;

static void forward(int sig) {
    if (child > 0)
        kill(child, sig);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: reaper PROGRAM [ARG...]\n");
        return 2;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("reaper: PR_SET_CHILD_SUBREAPER");
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    pid_t pid = fork();
    if (pid < 0) {
        perror("reaper: fork");
        return 1;
    }
    if (pid == 0) {
        execvp(argv[1], argv + 1);
        fprintf(stderr, "reaper: exec %s: %s\n", argv[1], strerror(errno));
        _exit(127);
    }
    child = pid;
    for (;;) {
        int status;
        pid_t done = waitpid(-1, &status, 0);
        if (done < 0) {
            if (errno == EINTR)
                continue;
            perror("reaper: waitpid");
            return 1;
        }
        if (done == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
}
