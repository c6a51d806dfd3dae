/*
 * probe: the program every supervisor in the benchmarks supervises.
 *
 * Usage: probe SOCKET_PATH [TAG [PIDFILE]]
 *        run [ANY...]           (started as "run": SOCKET_PATH from $PROBE_SOCKET, TAG =
 *                                the name of the working directory, arguments ignored.
 *                                For runit and s6, whose ./run gets no arguments of ours
 *                                (s6-supervise passes the service name): ./run is a
 *                                symbolic link to this program, so no shell runs between
 *                                the supervisor and the probe)
 *
 * On start it sends one datagram "<CLOCK_MONOTONIC ns> <pid>[ <TAG>]\n" to the Unix
 * datagram socket SOCKET_PATH, then waits for signals forever. The timestamp is
 * taken first thing in main(), so a measured restart includes everything the
 * supervisor does plus the kernel's fork/exec and the dynamic loader, the same
 * for every supervisor. TAG tells which of many watched probes started.
 *
 * With PIDFILE (for monit, which watches a pid file): the probe forks, the child
 * (in a session of its own) is the probe, and the parent writes the child's pid
 * to PIDFILE (atomically, by rename) and exits 0, as a classic daemon does. The
 * timestamp is still the one taken when the supervisor's exec reached main().
 *
 * With $PROBE_NOTIFY_FD (s6 only), after the datagram the probe writes a newline to
 * that descriptor: s6's readiness notification, as an s6-aware daemon does.
 *
 * If the datagram cannot be sent the probe still pauses instead of exiting:
 * exiting would make a supervisor respawn it in a tight loop (and burn rearm's
 * restart budget), while a missing datagram is already reported by the bench
 * as a missed restart.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void report(const char *sock_path, long long ns, const char *tag) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(sock_path) >= sizeof addr.sun_path) {
        fprintf(stderr, "probe: socket path too long: %s\n", sock_path);
        return;
    }
    strcpy(addr.sun_path, sock_path);
    char msg[320];
    int len = tag ? snprintf(msg, sizeof msg, "%lld %ld %.250s\n", ns, (long)getpid(), tag)
                  : snprintf(msg, sizeof msg, "%lld %ld\n", ns, (long)getpid());
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("probe: socket");
        return;
    }
    /* Blocking: when the bench's queue is full the probe waits for room rather than
     * lose its start; the timestamp inside was taken before, so the figure holds. */
    if (sendto(fd, msg, (size_t)len, 0, (struct sockaddr *)&addr, sizeof addr) < 0)
        perror("probe: sendto");
    close(fd);
}

/* Daemon style: the parent records the child's pid and leaves; returns in the child. */
static void daemonize(const char *pidfile) {
    pid_t pid = fork();
    if (pid < 0) {
        perror("probe: fork");
        exit(1);
    }
    if (pid == 0) {
        setsid();
        return;
    }
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp", pidfile);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%ld\n", (long)pid) < 0 || fclose(f) != 0 || rename(tmp, pidfile) != 0) {
        perror("probe: pid file");
        exit(1);
    }
    exit(0);
}

int main(int argc, char **argv) {
    struct timespec ts;
    /* Timestamp before anything else: this is the "restarted" instant. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;

    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    int service_dir = strcmp(base, "run") == 0;
    const char *sock_path = service_dir ? getenv("PROBE_SOCKET") : argc >= 2 ? argv[1] : NULL;
    const char *tag = !service_dir && argc >= 3 ? argv[2] : NULL;
    char cwd[PATH_MAX];
    if (service_dir && getcwd(cwd, sizeof cwd)) {
        const char *slash = strrchr(cwd, '/');
        tag = slash ? slash + 1 : cwd;
    }
    if (!sock_path) {
        fprintf(stderr, "usage: probe SOCKET_PATH [TAG [PIDFILE]] (or as run, PROBE_SOCKET set)\n");
        return 2;
    }
    if (!service_dir && argc >= 4)
        daemonize(argv[3]);
    report(sock_path, ns, tag);
    /* s6 readiness notification: with a notification-fd file in the service directory,
     * s6-supervise restarts a service that was ready for 1 s at once, and any other
     * only after a 1 s pause. $PROBE_NOTIFY_FD names that descriptor. */
    const char *notify = service_dir ? getenv("PROBE_NOTIFY_FD") : NULL;
    if (notify) {
        int nfd = atoi(notify);
        if (write(nfd, "\n", 1) < 0)
            perror("probe: readiness notification");
        close(nfd);
    }
    for (;;)
        pause();
}
