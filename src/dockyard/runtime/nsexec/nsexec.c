/* dockyard-nsexec PLAN: start one process inside a running container (the fast path of
 * `dockyard-runtime exec -d`, as runc's nsexec is C inside a Go runtime).
 *
 * PLAN is a file of NUL-terminated "key=value" records written by runtime/execplan.py, which
 * has already checked the container, converted its config and compiled its seccomp filter:
 *   ns=FLAG:PATH     a namespace to join (CLONE_NEW* number), in order (user first, mount last)
 *   cg1=DIR          a cgroup v1 directory to join (repeated)   cg2=DIR  the unified one (once)
 *   cwd= arg= env=   the process (arg/env repeated, in order)
 *   uid= gid= grp=   credentials (grp repeated: supplementary groups)
 *   cap.b= cap.e= cap.p= cap.i= cap.a=   capability masks (decimal)   lastcap=N
 *   rlim=RES:SOFT:HARD   (decimal; a value above the current hard limit is clamped to it)
 *   nnp=0|1   bpf=FILE (a classic BPF seccomp program)   console=SOCKET (process gets a pty)
 * Fd 3 is the status pipe: "pid N\n" once the process has exec'd, or "error MESSAGE\n" (exit 1).
 *
 * Why it is fast: v1 cgroups are joined by writing "0" to `tasks` (the calling thread, which
 * needs no global cgroup lock and so no RCU grace period: ~5-15 ms here), the unified one by
 * clone3(CLONE_INTO_CGROUP); no interpreter starts and nothing large is forked.
 * The process reports failures before execve through a close-on-exec pipe, so any error up to
 * the exec itself (cwd, lookup, credentials, seccomp) fails the exec with its message. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <grp.h>
#include <termios.h>
#include <unistd.h>

#define STATUS_FD 3
#define MAX_ITEMS 4096

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

struct plan {
    int ns_flag[16];
    char *ns_path[16];
    int n_ns;
    char *cg1[32];
    int n_cg1;
    char *cg2, *cwd, *console, *bpf_path;
    char *args[MAX_ITEMS + 1];
    int n_args;
    char *env[MAX_ITEMS + 1];
    int n_env;
    uid_t uid;
    gid_t gid;
    gid_t groups[NGROUPS_MAX > 65536 ? 65536 : NGROUPS_MAX];
    int n_groups;
    uint64_t cap_b, cap_e, cap_p, cap_i, cap_a;
    int last_cap;
    int rlim_res[32];
    unsigned long long rlim_soft[32], rlim_hard[32];
    int n_rlim;
    int nnp;
};

static struct plan P;
static int report_fd = STATUS_FD; /* the child reports through its own pipe */

static void fail(const char *fmt, ...) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg - 1, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if (n > (int)sizeof msg - 2) n = (int)sizeof msg - 2;
    if (report_fd == STATUS_FD) {
        dprintf(STATUS_FD, "error %.*s\n", n, msg);
    } else {
        (void)!write(report_fd, msg, (size_t)n);
    }
    _exit(1);
}

static unsigned long long num(const char *s, const char *key) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s) fail("nsexec: bad number for %s: %s", key, s);
    return v;
}

static char *read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("nsexec: open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) fail("nsexec: stat %s: %s", path, strerror(errno));
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) fail("nsexec: out of memory");
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) fail("nsexec: read %s: %s", path, r < 0 ? strerror(errno) : "short read");
        got += (size_t)r;
    }
    buf[got] = 0;
    close(fd);
    *len = got;
    return buf;
}

static void parse(char *buf, size_t len) {
    char *p = buf, *end = buf + len;
    while (p < end) {
        char *rec = p;
        size_t n = strnlen(p, (size_t)(end - p));
        p += n + 1;
        char *eq = strchr(rec, '=');
        if (!eq) fail("nsexec: bad plan record %s", rec);
        *eq = 0;
        const char *k = rec;
        char *v = eq + 1;
        if (!strcmp(k, "ns")) {
            char *colon = strchr(v, ':');
            if (!colon || P.n_ns >= 16) fail("nsexec: bad ns record");
            *colon = 0;
            P.ns_flag[P.n_ns] = (int)num(v, "ns");
            P.ns_path[P.n_ns++] = colon + 1;
        } else if (!strcmp(k, "cg1")) {
            if (P.n_cg1 >= 32) fail("nsexec: too many cgroups");
            P.cg1[P.n_cg1++] = v;
        } else if (!strcmp(k, "cg2")) P.cg2 = v;
        else if (!strcmp(k, "cwd")) P.cwd = v;
        else if (!strcmp(k, "console")) P.console = v;
        else if (!strcmp(k, "bpf")) P.bpf_path = v;
        else if (!strcmp(k, "arg")) {
            if (P.n_args >= MAX_ITEMS) fail("nsexec: too many arguments");
            P.args[P.n_args++] = v;
        } else if (!strcmp(k, "env")) {
            if (P.n_env >= MAX_ITEMS) fail("nsexec: too many environment variables");
            P.env[P.n_env++] = v;
        } else if (!strcmp(k, "uid")) P.uid = (uid_t)num(v, k);
        else if (!strcmp(k, "gid")) P.gid = (gid_t)num(v, k);
        else if (!strcmp(k, "grp")) {
            if (P.n_groups >= (int)(sizeof P.groups / sizeof P.groups[0])) fail("nsexec: too many groups");
            P.groups[P.n_groups++] = (gid_t)num(v, k);
        } else if (!strcmp(k, "cap.b")) P.cap_b = num(v, k);
        else if (!strcmp(k, "cap.e")) P.cap_e = num(v, k);
        else if (!strcmp(k, "cap.p")) P.cap_p = num(v, k);
        else if (!strcmp(k, "cap.i")) P.cap_i = num(v, k);
        else if (!strcmp(k, "cap.a")) P.cap_a = num(v, k);
        else if (!strcmp(k, "lastcap")) P.last_cap = (int)num(v, k);
        else if (!strcmp(k, "nnp")) P.nnp = (int)num(v, k);
        else if (!strcmp(k, "rlim")) {
            unsigned long long a, b;
            int r;
            if (P.n_rlim >= 32 || sscanf(v, "%d:%llu:%llu", &r, &a, &b) != 3) fail("nsexec: bad rlimit %s", v);
            P.rlim_res[P.n_rlim] = r;
            P.rlim_soft[P.n_rlim] = a;
            P.rlim_hard[P.n_rlim++] = b;
        } else fail("nsexec: unknown plan key %s", k);
    }
    if (!P.n_args) fail("nsexec: no arguments");
    if (!P.cwd) P.cwd = "/";
}

static void write_str(const char *path, const char *value) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail("cannot write %s to %s: %s", value, path, strerror(errno));
    if (write(fd, value, strlen(value)) < 0) fail("cannot write %s to %s: %s", value, path, strerror(errno));
    close(fd);
}

/* the pty: a new pair from the container's /dev/ptmx, the master sent to the console socket
 * (runc's protocol: one message, data "/dev/ptmx", the fd as SCM_RIGHTS) */
static void setup_console(int sock) {
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) fail("open /dev/ptmx: %s", strerror(errno));
    int unlock = 0, n;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &n) < 0)
        fail("pty: %s", strerror(errno));
    char name[64];
    snprintf(name, sizeof name, "/dev/pts/%d", n);
    int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) fail("open %s: %s", name, strerror(errno));
    char data[] = "/dev/ptmx";
    struct iovec iov = {data, sizeof data - 1};
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &master, sizeof(int));
    if (sendmsg(sock, &msg, 0) < 0) fail("send the terminal: %s", strerror(errno));
    close(master);
    close(sock);
    if (setsid() < 0) fail("setsid: %s", strerror(errno));
    for (int fd = 0; fd < 3; fd++)
        if (dup2(slave, fd) < 0) fail("dup2: %s", strerror(errno));
    if (ioctl(0, TIOCSCTTY, 0) < 0) fail("TIOCSCTTY: %s", strerror(errno));
    if (slave > 2) close(slave);
}

/* chdir, then refuse a cwd outside the container's root (CVE-2024-21626) */
static void enter_cwd(void) {
    if (chdir(P.cwd) < 0) fail("chdir to cwd (\"%s\") set in config.json failed: %s", P.cwd, strerror(errno));
    char buf[PATH_MAX];
    if (!getcwd(buf, sizeof buf) || buf[0] != '/')
        fail("current working directory is outside of container mount namespace root -- "
             "possible container breakout detected");
}

static const char *env_path(void) {
    for (int i = 0; i < P.n_env; i++)
        if (!strncmp(P.env[i], "PATH=", 5)) return P.env[i] + 5;
    return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

static int runnable(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* the executable as execvp finds it, with runc's messages */
static const char *lookup(void) {
    const char *a0 = P.args[0];
    static char buf[PATH_MAX];
    if (strchr(a0, '/')) {
        const char *path = a0;
        if (a0[0] != '/') {
            snprintf(buf, sizeof buf, "%s/%s", P.cwd, a0);
            path = buf;
        }
        struct stat st;
        if (stat(path, &st) < 0) fail("exec: \"%s\": stat %s: no such file or directory", a0, a0);
        if (S_ISDIR(st.st_mode) || access(path, X_OK) < 0) fail("exec: \"%s\": permission denied", a0);
        return path;
    }
    const char *dirs = env_path();
    while (1) {
        const char *colon = strchr(dirs, ':');
        size_t n = colon ? (size_t)(colon - dirs) : strlen(dirs);
        snprintf(buf, sizeof buf, "%.*s/%s", (int)(n ? n : 1), n ? dirs : ".", a0);
        if (runnable(buf)) return buf;
        if (!colon) break;
        dirs = colon + 1;
    }
    fail("exec: \"%s\": executable file not found in $PATH", a0);
    return NULL;
}

static void load_seccomp(const char *bpf, size_t len) {
    struct sock_fprog prog = {(unsigned short)(len / 8), (struct sock_filter *)bpf};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
        fail("prctl(PR_SET_SECCOMP): %s", strerror(errno));
}

static void set_caps(void) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    d[0].effective = (uint32_t)P.cap_e;
    d[1].effective = (uint32_t)(P.cap_e >> 32);
    d[0].permitted = (uint32_t)P.cap_p;
    d[1].permitted = (uint32_t)(P.cap_p >> 32);
    d[0].inheritable = (uint32_t)P.cap_i;
    d[1].inheritable = (uint32_t)(P.cap_i >> 32);
    if (syscall(SYS_capset, &h, d) < 0) fail("capset: %s", strerror(errno));
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == 0) {
        for (int i = 0; i <= P.last_cap; i++)
            if (P.cap_a & (1ULL << i)) (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, i, 0, 0);
    }
}

/* in the container's namespaces and cgroups: the process itself */
static void child(int console, const char *bpf, size_t bpf_len) {
    if (console >= 0) setup_console(console);
    enter_cwd();
    const char *path = lookup();
    /* nothing of ours may reach the process: every other descriptor closes at exec (the
     * report pipe is close-on-exec too, which is how the parent learns the exec happened) */
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        for (int fd = 3; fd < 65536; fd++)
            if (fd != report_fd) fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    for (int i = 0; i < P.n_rlim; i++) {
        struct rlimit now;
        if (getrlimit(P.rlim_res[i], &now) < 0) fail("getrlimit: %s", strerror(errno));
        struct rlimit want = {P.rlim_soft[i], P.rlim_hard[i]};
        if (now.rlim_max != RLIM_INFINITY) { /* never above the current hard limit */
            if (want.rlim_cur > now.rlim_max) want.rlim_cur = now.rlim_max;
            if (want.rlim_max > now.rlim_max) want.rlim_max = now.rlim_max;
        }
        if (setrlimit(P.rlim_res[i], &want) < 0) fail("setrlimit %d: %s", P.rlim_res[i], strerror(errno));
    }
    if (bpf && !P.nnp) load_seccomp(bpf, bpf_len); /* while CAP_SYS_ADMIN is held */
    for (int i = 0; i <= P.last_cap; i++)
        if (!(P.cap_b & (1ULL << i)) && prctl(PR_CAPBSET_DROP, i, 0, 0, 0) < 0 && errno != EINVAL)
            fail("drop capability %d from the bounding set: %s", i, strerror(errno));
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) fail("PR_SET_KEEPCAPS: %s", strerror(errno));
    if (setgroups((size_t)P.n_groups, P.groups) < 0) fail("setgroups: %s", strerror(errno));
    if (setresgid(P.gid, P.gid, P.gid) < 0) fail("setresgid %u: %s", P.gid, strerror(errno));
    if (setresuid(P.uid, P.uid, P.uid) < 0) fail("setresuid %u: %s", P.uid, strerror(errno));
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) fail("PR_SET_KEEPCAPS: %s", strerror(errno));
    set_caps();
    if (P.nnp) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
        if (bpf) load_seccomp(bpf, bpf_len);
    }
    P.args[P.n_args] = NULL;
    P.env[P.n_env] = NULL;
    execve(path, P.args, P.env);
    fail("exec %s: %s", P.args[0], strerror(errno));
}

static pid_t clone_into(int cgroup_fd) {
    if (cgroup_fd >= 0) {
        struct clone_args a;
        memset(&a, 0, sizeof a);
        a.flags = CLONE_INTO_CGROUP;
        a.exit_signal = SIGCHLD;
        a.cgroup = (uint64_t)cgroup_fd;
        long pid = syscall(SYS_clone3, &a, sizeof a);
        if (pid >= 0) return (pid_t)pid;
        if (errno != ENOSYS && errno != E2BIG && errno != EINVAL && errno != EOPNOTSUPP)
            fail("clone3 into the container's cgroup: %s", strerror(errno));
        /* an older kernel: join the unified hierarchy the slow way (through the directory's
         * fd: this process is in the container's mount namespace already), then fork */
        int fd = openat(cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) < 0) fail("cannot join cgroup %s: %s", P.cg2, strerror(errno));
        close(fd);
    }
    return fork();
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "-v")) return 0; /* the install check */
    if (argc != 2) {
        fprintf(stderr, "usage: dockyard-nsexec PLAN (status on fd 3)\n");
        return 2;
    }
    if (fcntl(STATUS_FD, F_GETFD) < 0) {
        fprintf(stderr, "dockyard-nsexec: fd 3 (the status pipe) is not open\n");
        return 2;
    }
    size_t len;
    char *buf = read_file(argv[1], &len);
    parse(buf, len);
    size_t bpf_len = 0;
    char *bpf = P.bpf_path ? read_file(P.bpf_path, &bpf_len) : NULL;
    if (bpf && (bpf_len == 0 || bpf_len % 8)) fail("nsexec: %s is not a BPF program", P.bpf_path);
    /* out of the container's reach until execve (CVE-2019-5736) */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    int console = -1;
    if (P.console) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(P.console) >= sizeof sa.sun_path) fail("console socket path too long");
        strcpy(sa.sun_path, P.console);
        console = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (console < 0 || connect(console, (struct sockaddr *)&sa, sizeof sa) < 0)
            fail("failed to connect to console socket %s: %s", P.console, strerror(errno));
    }
    int nsfd[16];
    for (int i = 0; i < P.n_ns; i++) {
        nsfd[i] = open(P.ns_path[i], O_RDONLY | O_CLOEXEC);
        if (nsfd[i] < 0) fail("open %s: %s", P.ns_path[i], strerror(errno));
    }
    int cgfd = -1;
    if (P.cg2) {
        cgfd = open(P.cg2, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cgfd < 0) fail("open cgroup %s: %s", P.cg2, strerror(errno));
    }
    char path[PATH_MAX];
    for (int i = 0; i < P.n_cg1; i++) {
        snprintf(path, sizeof path, "%s/tasks", P.cg1[i]);
        write_str(path, "0");   /* this (single) thread: no global lock, no grace period */
    }
    for (int i = 0; i < P.n_ns; i++)
        if (setns(nsfd[i], P.ns_flag[i]) < 0) fail("setns %s: %s", P.ns_path[i], strerror(errno));
    int rep[2];
    if (pipe2(rep, O_CLOEXEC) < 0) fail("pipe: %s", strerror(errno));
    pid_t pid = clone_into(cgfd);
    if (pid < 0) fail("fork: %s", strerror(errno));
    if (pid == 0) {
        close(rep[0]);
        report_fd = rep[1];
        child(console, bpf, bpf_len);
    }
    close(rep[1]);
    char msg[4096];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(rep[0], msg + got, sizeof msg - 1 - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
        if (got == sizeof msg - 1) break;
    }
    if (got) { /* the process failed before its exec: reap it, report why */
        waitpid(pid, NULL, 0);
        dprintf(STATUS_FD, "error %.*s\n", (int)got, msg);
        return 1;
    }
    dprintf(STATUS_FD, "pid %d\n", (int)pid);
    return 0;
}
