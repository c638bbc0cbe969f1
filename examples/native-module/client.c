/*
 * A stand-in for a native web-server module talking to `ancm helper`
 * (docs/helper-protocol.md). A real module must stay thin, so this one does
 * no process management and links no JSON library: it starts the helper,
 * waits for `ready`, sends one request to the app with the token, prints the
 * answer and stops the helper.
 *
 * Usage: client ANCM_BINARY APP_PATH [PROCESS_PATH]
 * Build: cc -std=c99 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L \
 *            -o client client.c
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* The protocol refuses longer lines, so a bigger buffer would never help. */
#define MAX_LINE (64 * 1024)
/* Starting an app may take a while (startupTimeLimit), but never forever. */
#define TIMEOUT_SECS 30

static void die(const char *what)
{
    fprintf(stderr, "client: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void fail(const char *what)
{
    fprintf(stderr, "client: %s\n", what);
    exit(1);
}

static void on_alarm(int sig)
{
    static const char msg[] = "client: timed out\n";
    (void)sig;
    /* Only async-signal-safe calls here; the helper sees end of file on its
     * stdin once we are gone, and stops the app by itself. */
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    _exit(1);
}

static void write_all(int fd, const char *buf, size_t len, const char *what)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die(what);
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* ---- Reading the helper's events, one line at a time ------------------ */

struct reader {
    int fd;
    char buf[MAX_LINE + 1];
    size_t len;  /* bytes in buf */
    size_t used; /* bytes of buf already handed out as lines */
};

/* Returns the next line without its '\n' (NUL-terminated, valid until the
 * next call), or NULL at end of file. A partial line at end of file is
 * dropped: the helper always ends its lines, so it means it was cut off. */
static char *read_line(struct reader *r)
{
    /* Drop the line handed out last time. */
    memmove(r->buf, r->buf + r->used, r->len - r->used);
    r->len -= r->used;
    r->used = 0;
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        if (nl != NULL) {
            *nl = '\0';
            r->used = (size_t)(nl - r->buf) + 1;
            return r->buf;
        }
        if (r->len == MAX_LINE)
            fail("the helper sent a line longer than the protocol allows");
        ssize_t n = read(r->fd, r->buf + r->len, MAX_LINE - r->len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("read from helper");
        }
        if (n == 0)
            return NULL;
        r->len += (size_t)n;
    }
}

/* ---- Minimal JSON scanning -------------------------------------------- */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

/* Skips a JSON string starting at its opening quote; returns the character
 * after the closing quote, or NULL if the string is not closed. */
static const char *skip_string(const char *p)
{
    for (p++; *p != '\0'; p++) {
        if (*p == '\\') {
            if (*++p == '\0')
                return NULL;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/* Finds `"key":` among the top-level members of the object on `line` and
 * returns where its value starts, or NULL. Strings and nested values are
 * skipped as a whole, so a `"port":` inside, say, a failure's `output` text
 * is never mistaken for the real member. */
static const char *find_member(const char *line, const char *key)
{
    size_t key_len = strlen(key);
    int depth = 0;
    int want_key = 0; /* at depth 1, the next string is a member's name */
    const char *p = line;

    while (*p != '\0') {
        if (*p == '"') {
            const char *end = skip_string(p);
            if (end == NULL)
                return NULL;
            if (depth == 1 && want_key) {
                const char *colon = skip_ws(end);
                if (*colon != ':')
                    return NULL;
                if ((size_t)(end - p) == key_len + 2 &&
                    memcmp(p + 1, key, key_len) == 0)
                    return skip_ws(colon + 1);
                want_key = 0;
                p = colon + 1;
                continue;
            }
            p = end;
            continue;
        }
        if (*p == '{' || *p == '[') {
            depth++;
            want_key = (*p == '{' && depth == 1);
        } else if (*p == '}' || *p == ']') {
            depth--;
        } else if (*p == ',' && depth == 1) {
            want_key = 1;
        }
        p++;
    }
    return NULL;
}

/* Reads member `key` as a non-negative integer no larger than `max` (the
 * protocol allows numbers as strings, too). Returns -1 if it is not one. */
static long get_number(const char *line, const char *key, long max)
{
    const char *v = find_member(line, key);
    if (v == NULL)
        return -1;
    if (*v == '"')
        v++;
    if (*v < '0' || *v > '9')
        return -1;
    errno = 0;
    char *end;
    long n = strtol(v, &end, 10);
    if (errno != 0 || n > max)
        return -1;
    return n;
}

/* Copies string member `key` into out (size out_size), undoing the simple
 * escapes. \uXXXX is kept as written: this client only prints such text.
 * Returns 0, or -1 if the member is missing, not a string or too long. */
static int get_string(const char *line, const char *key, char *out,
                      size_t out_size)
{
    const char *v = find_member(line, key);
    size_t n = 0;
    if (v == NULL || *v != '"')
        return -1;
    for (v++; *v != '"'; v++) {
        char c = *v;
        if (c == '\0')
            return -1;
        if (c == '\\') {
            switch (*++v) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': c = '\\'; v--; break; /* copy "\uXXXX" as is */
            case '\0': return -1;
            default: c = *v; break; /* \" \\ \/ */
            }
        }
        if (n + 1 >= out_size)
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

/* Whether the line is the event `name`. */
static int is_event(const char *line, const char *name)
{
    char event[64];
    return get_string(line, "event", event, sizeof event) == 0 &&
           strcmp(event, name) == 0;
}

/* ---- Writing requests ------------------------------------------------- */

/* Appends s to the request as JSON string content. Control characters are
 * escaped too: a raw newline in a path would end the request line early. */
static char *append_escaped(char *out, const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *out++ = '\\';
            *out++ = (char)c;
        } else if (c < 0x20) {
            out += sprintf(out, "\\u%04x", c);
        } else {
            *out++ = (char)c;
        }
    }
    return out;
}

static char *start_request(const char *app_path, const char *process_path)
{
    size_t len = strlen(app_path) + (process_path ? strlen(process_path) : 0);
    /* Escaping grows a byte to at most six ("\u001f"). */
    char *req = malloc(6 * len + 64);
    if (req == NULL)
        die("malloc");
    char *p = req;
    p += sprintf(p, "{\"op\":\"start\",\"appPath\":\"");
    p = append_escaped(p, app_path);
    if (process_path != NULL) {
        p += sprintf(p, "\",\"processPath\":\"");
        p = append_escaped(p, process_path);
    }
    sprintf(p, "\"}\n");
    return req;
}

/* ---- The helper process ----------------------------------------------- */

/* Makes sure fds 0-2 are open, so that pipe() never hands out one of them:
 * the child's dup2() onto 0 and 1 would then clobber its own pipe ends. */
static void ensure_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) == -1) {
            if (errno != EBADF)
                die("fcntl");
            if (open("/dev/null", O_RDWR) == -1)
                die("open /dev/null");
        }
    }
}

static pid_t spawn_helper(const char *ancm, int *to_helper, int *from_helper)
{
    int in[2], out[2];
    if (pipe(in) == -1 || pipe(out) == -1)
        die("pipe");
    pid_t pid = fork();
    if (pid == -1)
        die("fork");
    if (pid == 0) {
        /* Ignored signals stay ignored across exec; the helper should get
         * the ordinary SIGPIPE, not the one this client chose for itself. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        if (sigemptyset(&dfl.sa_mask) == -1 ||
            sigaction(SIGPIPE, &dfl, NULL) == -1) {
            perror("client: sigaction SIGPIPE");
            _exit(127);
        }
        if (dup2(in[0], STDIN_FILENO) == -1 ||
            dup2(out[1], STDOUT_FILENO) == -1) {
            perror("client: dup2");
            _exit(127);
        }
        /* The helper must hold no copy of the write end of its own stdin,
         * or it would never see end of file when the module goes away. */
        if (close(in[0]) == -1 || close(in[1]) == -1 ||
            close(out[0]) == -1 || close(out[1]) == -1) {
            perror("client: close");
            _exit(127);
        }
        execlp(ancm, ancm, "helper", (char *)NULL);
        fprintf(stderr, "client: exec %s: %s\n", ancm, strerror(errno));
        _exit(127);
    }
    /* Closing our copies of the child's ends lets us see end of file when
     * the helper exits. */
    if (close(in[0]) == -1 || close(out[1]) == -1)
        die("close");
    *to_helper = in[1];
    *from_helper = out[0];
    return pid;
}

/* ---- One HTTP request to the app -------------------------------------- */

static int connect_app(long port, char *host, size_t host_size)
{
    struct sockaddr_in v4;
    memset(&v4, 0, sizeof v4);
    v4.sin_family = AF_INET;
    v4.sin_port = htons((unsigned short)port);
    v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd == -1)
        die("socket");
    if (connect(fd, (struct sockaddr *)&v4, sizeof v4) == 0) {
        snprintf(host, host_size, "127.0.0.1:%ld", port);
        return fd;
    }
    /* The protocol allows the app to listen on [::1] instead. */
    if (errno != ECONNREFUSED)
        die("connect to 127.0.0.1");
    if (close(fd) == -1)
        die("close");

    struct sockaddr_in6 v6;
    memset(&v6, 0, sizeof v6);
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons((unsigned short)port);
    v6.sin6_addr = in6addr_loopback;
    fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd == -1)
        die("socket");
    if (connect(fd, (struct sockaddr *)&v6, sizeof v6) == -1)
        die("connect to the app (127.0.0.1 and [::1])");
    snprintf(host, host_size, "[::1]:%ld", port);
    return fd;
}

static void get_root(long port, const char *token)
{
    char host[64];
    int fd = connect_app(port, host, sizeof host);

    char req[1024];
    int len = snprintf(req, sizeof req,
                       "GET / HTTP/1.1\r\n"
                       "Host: %s\r\n"
                       "MS-ASPNETCORE-TOKEN: %s\r\n"
                       "Connection: close\r\n"
                       "\r\n",
                       host, token);
    if (len < 0 || (size_t)len >= sizeof req)
        fail("the token is too long for the request");
    write_all(fd, req, (size_t)len, "send to the app");

    /* Connection: close, so the app ends the response by closing. */
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("read from the app");
        }
        if (n == 0)
            break;
        write_all(STDOUT_FILENO, buf, (size_t)n, "write to stdout");
    }
    if (close(fd) == -1)
        die("close socket");
}

/* ---- The exchange ----------------------------------------------------- */

/* Reads events until `want`. An `error` event is fatal: this client sends one
 * request at a time, so the error is about that request. */
static char *wait_event(struct reader *r, const char *want)
{
    char *line;
    while ((line = read_line(r)) != NULL) {
        if (is_event(line, want))
            return line;
        if (is_event(line, "error")) {
            char message[1024];
            if (get_string(line, "message", message, sizeof message) != 0)
                strcpy(message, "(no message)");
            fprintf(stderr, "client: the helper says: %s\n", message);
            exit(1);
        }
    }
    fprintf(stderr, "client: the helper closed its output before \"%s\"\n",
            want);
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: client ANCM_BINARY APP_PATH [PROCESS_PATH]\n");
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    if (sigemptyset(&sa.sa_mask) == -1 || sigaction(SIGALRM, &sa, NULL) == -1)
        die("sigaction SIGALRM");
    /* A helper that went away must show up as EPIPE on write, reported like
     * any other error, not as a silent death by signal. */
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) == -1)
        die("sigaction SIGPIPE");
    alarm(TIMEOUT_SECS);

    ensure_std_fds();
    int to_helper, from_helper;
    pid_t helper = spawn_helper(argv[1], &to_helper, &from_helper);
    static struct reader r; /* static: too big for some default stacks */
    r.fd = from_helper;

    char *line = read_line(&r);
    if (line == NULL)
        fail("the helper closed its output before \"hello\"");
    if (!is_event(line, "hello") || get_number(line, "protocol", 1000) != 1) {
        fprintf(stderr, "client: unsupported helper protocol: %s\n", line);
        return 3;
    }

    char *req = start_request(argv[2], argc == 4 ? argv[3] : NULL);
    write_all(to_helper, req, strlen(req), "write to helper");
    free(req);

    long port = -1, pid = -1;
    char token[256];
    while ((line = read_line(&r)) != NULL) {
        if (is_event(line, "ready")) {
            port = get_number(line, "port", 65535);
            pid = get_number(line, "pid", LONG_MAX);
            if (port <= 0 || get_string(line, "token", token, sizeof token) != 0) {
                fprintf(stderr, "client: bad ready event: %s\n", line);
                return 1;
            }
            break;
        }
        if (is_event(line, "failed") || is_event(line, "error")) {
            char reason[4096];
            const char *key = is_event(line, "failed") ? "reason" : "message";
            if (get_string(line, key, reason, sizeof reason) != 0)
                strcpy(reason, "(no reason given)");
            fprintf(stderr, "client: the app did not start: %s\n", reason);
            return 1;
        }
        /* starting, exited, paused and events newer than this client. */
    }
    if (line == NULL)
        fail("the helper closed its output before \"ready\"");
    fprintf(stderr, "client: ready: pid=%ld port=%ld\n", pid, port);

    get_root(port, token);

    static const char stop[] = "{\"op\":\"stop\"}\n";
    write_all(to_helper, stop, sizeof stop - 1, "write to helper");
    wait_event(&r, "stopped");
    if (close(to_helper) == -1 || close(from_helper) == -1)
        die("close pipe");

    int status;
    while (waitpid(helper, &status, 0) == -1) {
        if (errno != EINTR)
            die("waitpid");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status))
            fprintf(stderr, "client: the helper died of signal %d\n",
                    WTERMSIG(status));
        else
            fprintf(stderr, "client: the helper exited with status %d\n",
                    WEXITSTATUS(status));
        return 1;
    }
    return 0;
}
