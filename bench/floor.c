/*
 * floor: the smallest honest respawner, the lower bound for restart latency.
 *
 * Usage: floor PROGRAM [ARG...]
 *
 * Spawns PROGRAM, blocks in waitpid() until it ends, spawns it again at once,
 * forever. No delay, no logging, no bookkeeping: what remains is the kernel's
 * wakeup of a blocked waitpid() and the cost of posix_spawn (glibc uses
 * clone(CLONE_VM|CLONE_VFORK), cheaper than fork for the parent).
 *
 * SIGTERM/SIGINT: forward SIGTERM to the current child, reap it and exit 0, so
 * the bench can stop it cleanly by its PID.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static volatile sig_atomic_t stopping = 0;
static volatile pid_t child = 0;

static void on_stop(int sig) {
    (void)sig;
    stopping = 1;
    /* kill() is async-signal-safe; forwarding here closes the race between
     * checking `stopping` and blocking in waitpid(). */
    if (child > 0)
        kill(child, SIGTERM);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: floor PROGRAM [ARG...]\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: waitpid() must return EINTR so the loop sees `stopping`. */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    while (!stopping) {
        pid_t pid;
        int err = posix_spawn(&pid, argv[1], NULL, NULL, argv + 1, environ);
        if (err != 0) {
            fprintf(stderr, "floor: posix_spawn %s: %s\n", argv[1], strerror(err));
            return 1;
        }
        child = pid;
        if (stopping)
            kill(pid, SIGTERM);
        int status;
        while (waitpid(pid, &status, 0) < 0) {
            if (errno != EINTR) {
                perror("floor: waitpid");
                return 1;
            }
        }
        child = 0;
    }
    return 0;
}
