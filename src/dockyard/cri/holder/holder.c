/* dockyard-pod-holder: the process that keeps a pod's namespaces alive.
 * It sleeps until SIGTERM or SIGINT (then exits 0) and reaps any child it inherits as the
 * pod's PID 1 (a shared PID namespace makes it every container's ancestor).
 * Built statically by scripts/install.sh; Dockyard imports it as a one-file image. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) { (void)sig; _exit(0); }

static void on_child(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    (void)argv;
    if (argc > 1 && getpid() != 1) {
        /* `holder -v`: prove it runs (used by the install check) */
        return 0;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_child;
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    for (;;) {
        pause();
    }
    return 0;
}
