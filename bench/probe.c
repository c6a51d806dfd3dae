/*
 * probe: the program every supervisor in bench/restart_latency.py supervises.
 *
 * Usage: probe SOCKET_PATH
 *
 * On start it sends one datagram "<CLOCK_MONOTONIC ns> <pid>\n" to the Unix
 * datagram socket SOCKET_PATH, then waits for signals forever. The timestamp is
 * taken first thing in main(), so a measured restart includes everything the
 * supervisor does plus the kernel's fork/exec and the dynamic loader, the same
 * for every supervisor.
 *
 * If the datagram cannot be sent the probe still pauses instead of exiting:
 * exiting would make a supervisor respawn it in a tight loop (and burn rearm's
 * restart budget), while a missing datagram is already reported by the bench
 * as a missed restart.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec ts;
    /* Timestamp before anything else: this is the "restarted" instant. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;

    if (argc < 2) {
        fprintf(stderr, "usage: probe SOCKET_PATH\n");
        return 2;
    }
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(argv[1]) >= sizeof addr.sun_path) {
        fprintf(stderr, "probe: socket path too long: %s\n", argv[1]);
    } else {
        strcpy(addr.sun_path, argv[1]);
        char msg[64];
        int len = snprintf(msg, sizeof msg, "%lld %ld\n", ns, (long)getpid());
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            perror("probe: socket");
        } else {
            if (sendto(fd, msg, (size_t)len, 0, (struct sockaddr *)&addr, sizeof addr) < 0)
                perror("probe: sendto");
            close(fd);
        }
    }
    for (;;)
        pause();
}
