/*
 * A stand-in for a native web-server module talking to `ancm helper`
 * (docs/helper-protocol.md). A real module must stay thin, so this one does
 * no process management and links no JSON library: it starts the helper,
 * waits for `ready`, asks for `status`, sends one request to the app with the
 * token, recycles the app, sends a request to the new process, prints both
 * answers and stops the helper.
 *
 * It runs on POSIX systems and on Windows (where IIS's module lives): the
 * only differences are how the helper is started with pipes, how sockets
 * are set up and how the whole run is bounded in time.
 *
 * Usage: client ANCM_BINARY APP_PATH [PROCESS_PATH]
 * Build: cc -std=c99 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L \
 *            -o client client.c
 *        x86_64-w64-mingw32-gcc -std=c99 -Wall -Wextra -Werror \
 *            -o client.exe client.c -lws2_32
 */

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <fcntl.h>
#include <io.h>
#else
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The protocol refuses longer lines, so a bigger buffer would never help. */
#define MAX_LINE (64 * 1024)
/* Starting an app may take a while (startupTimeLimit), but never forever. */
#define TIMEOUT_SECS 30

static void fail(const char *what)
{
    fprintf(stderr, "client: %s\n", what);
    exit(1);
}

/* ---- What differs between Windows and POSIX ---------------------------- */

#ifdef _WIN32

typedef HANDLE pipe_end;
typedef HANDLE helper_process;
typedef SOCKET app_socket;
#define BAD_SOCKET INVALID_SOCKET

/* A failed Win32 call: its name and GetLastError's code and text. */
static void die(const char *what)
{
    DWORD code = GetLastError();
    char text[512] = "";
    FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                   NULL, code, 0, text, sizeof text, NULL);
    text[strcspn(text, "\r\n")] = '\0';
    fprintf(stderr, "client: %s: error %lu: %s\n", what, (unsigned long)code,
            text);
    exit(1);
}

/* A failed Winsock call: its error code is WSAGetLastError's, not errno. */
static void die_socket(const char *what)
{
    SetLastError((DWORD)WSAGetLastError());
    die(what);
}

static DWORD WINAPI watchdog(LPVOID unused)
{
    (void)unused;
    Sleep(TIMEOUT_SECS * 1000);
    fputs("client: timed out\n", stderr);
    fflush(stderr);
    /* The helper sees end of file on its stdin once we are gone, and stops
     * the app by itself. */
    ExitProcess(1);
    return 0;
}

static void platform_init(void)
{
    HANDLE timer = CreateThread(NULL, 0, watchdog, NULL, 0, NULL);
    if (timer == NULL)
        die("CreateThread");
    CloseHandle(timer);
    /* The app's answers are printed byte for byte: no \n to \r\n. */
    if (_setmode(_fileno(stdout), _O_BINARY) == -1)
        fail("cannot set stdout to binary mode");
    WSADATA wsa;
    int err = WSAStartup(MAKEWORD(2, 2), &wsa);
    if (err != 0) {
        SetLastError((DWORD)err);
        die("WSAStartup");
    }
}

/* Appends `arg` to `out` quoted as the C runtime's command-line parser
 * (CommandLineToArgvW) reads it back: backslashes are literal except
 * before a quote. Returns the new end of `out`. */
static char *append_quoted(char *out, const char *arg)
{
    *out++ = '"';
    for (;;) {
        size_t slashes = 0;
        while (*arg == '\\') {
            arg++;
            slashes++;
        }
        if (*arg == '\0') {
            /* Doubled, so the closing quote stays a quote. */
            for (size_t i = 0; i < 2 * slashes; i++)
                *out++ = '\\';
            break;
        }
        if (*arg == '"') {
            for (size_t i = 0; i < 2 * slashes + 1; i++)
                *out++ = '\\';
        } else {
            for (size_t i = 0; i < slashes; i++)
                *out++ = '\\';
        }
        *out++ = *arg++;
    }
    *out++ = '"';
    return out;
}

static helper_process spawn_helper(const char *ancm, pipe_end *to_helper,
                                   pipe_end *from_helper)
{
    SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
    HANDLE in_read, in_write, out_read, out_write, err_copy;
    if (!CreatePipe(&in_read, &in_write, &inherit, 0) ||
        !CreatePipe(&out_read, &out_write, &inherit, 0))
        die("CreatePipe");
    /* The helper must hold no copy of the write end of its own stdin, or it
     * would never see end of file when the module goes away; nor of the
     * read end of its stdout. */
    if (!SetHandleInformation(in_write, HANDLE_FLAG_INHERIT, 0) ||
        !SetHandleInformation(out_read, HANDLE_FLAG_INHERIT, 0))
        die("SetHandleInformation");
    /* The helper's stderr (ancm's log and the app's output) is ours; an
     * inheritable copy, whatever kind of handle our stderr is. Without one,
     * the helper has none either. */
    HANDLE err = GetStdHandle(STD_ERROR_HANDLE);
    err_copy = NULL;
    if (err != NULL && err != INVALID_HANDLE_VALUE &&
        !DuplicateHandle(GetCurrentProcess(), err, GetCurrentProcess(),
                         &err_copy, 0, TRUE, DUPLICATE_SAME_ACCESS))
        die("DuplicateHandle stderr");

    /* Each character may need a backslash, plus quotes and " helper". */
    char *command_line = malloc(2 * strlen(ancm) + 16);
    if (command_line == NULL)
        fail("out of memory");
    char *end = append_quoted(command_line, ancm);
    strcpy(end, " helper");

    STARTUPINFOA si;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = in_read;
    si.hStdOutput = out_write;
    si.hStdError = err_copy;
    PROCESS_INFORMATION pi;
    if (!CreateProcessA(NULL, command_line, NULL, NULL, TRUE, 0, NULL, NULL,
                        &si, &pi)) {
        fprintf(stderr, "client: cannot start %s\n", ancm);
        die("CreateProcess");
    }
    free(command_line);
    CloseHandle(pi.hThread);
    /* Closing our copies of the child's ends lets us see end of file when
     * the helper exits. */
    if (!CloseHandle(in_read) || !CloseHandle(out_write) ||
        (err_copy != NULL && !CloseHandle(err_copy)))
        die("CloseHandle");
    *to_helper = in_write;
    *from_helper = out_read;
    return pi.hProcess;
}

/* Bytes read, 0 at end of file. */
static size_t pipe_read(pipe_end p, char *buf, size_t len)
{
    DWORD n;
    if (!ReadFile(p, buf, (DWORD)len, &n, NULL)) {
        /* The helper closed its end: end of file. */
        if (GetLastError() == ERROR_BROKEN_PIPE)
            return 0;
        die("read from helper");
    }
    return n;
}

static void pipe_write_all(pipe_end p, const char *buf, size_t len)
{
    while (len > 0) {
        DWORD n;
        if (!WriteFile(p, buf, (DWORD)len, &n, NULL))
            die("write to helper");
        buf += n;
        len -= n;
    }
}

static void pipe_close(pipe_end p)
{
    if (!CloseHandle(p))
        die("close pipe");
}

/* The helper's exit code; it is Windows, so no signals to report. */
static int wait_helper(helper_process helper)
{
    DWORD code;
    if (WaitForSingleObject(helper, INFINITE) != WAIT_OBJECT_0 ||
        !GetExitCodeProcess(helper, &code))
        die("wait for the helper");
    CloseHandle(helper);
    if (code != 0) {
        fprintf(stderr, "client: the helper exited with status %lu\n",
                (unsigned long)code);
        return 1;
    }
    return 0;
}

static int connection_refused(void)
{
    return WSAGetLastError() == WSAECONNREFUSED;
}

static long socket_read(app_socket s, char *buf, size_t len)
{
    return recv(s, buf, (int)len, 0);
}

static long socket_write(app_socket s, const char *buf, size_t len)
{
    return send(s, buf, (int)len, 0);
}

static void socket_close(app_socket s)
{
    if (closesocket(s) != 0)
        die_socket("close socket");
}

#else /* POSIX */

typedef int pipe_end;
typedef pid_t helper_process;
typedef int app_socket;
#define BAD_SOCKET (-1)

static void die(const char *what)
{
    fprintf(stderr, "client: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void die_socket(const char *what)
{
    die(what);
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

static void platform_init(void)
{
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
}

static helper_process spawn_helper(const char *ancm, pipe_end *to_helper,
                                   pipe_end *from_helper)
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

static size_t pipe_read(pipe_end p, char *buf, size_t len)
{
    for (;;) {
        ssize_t n = read(p, buf, len);
        if (n >= 0)
            return (size_t)n;
        if (errno != EINTR)
            die("read from helper");
    }
}

static void pipe_write_all(pipe_end p, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(p, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("write to helper");
        }
        buf += n;
        len -= (size_t)n;
    }
}

static void pipe_close(pipe_end p)
{
    if (close(p) == -1)
        die("close pipe");
}

static int wait_helper(helper_process helper)
{
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

static int connection_refused(void)
{
    return errno == ECONNREFUSED;
}

static long socket_read(app_socket s, char *buf, size_t len)
{
    ssize_t n;
    do
        n = read(s, buf, len);
    while (n < 0 && errno == EINTR);
    return (long)n;
}

static long socket_write(app_socket s, const char *buf, size_t len)
{
    ssize_t n;
    do
        n = write(s, buf, len);
    while (n < 0 && errno == EINTR);
    return (long)n;
}

static void socket_close(app_socket s)
{
    if (close(s) == -1)
        die("close socket");
}

#endif

/* ---- Reading the helper's events, one line at a time ------------------ */

struct reader {
    pipe_end pipe;
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
        size_t n = pipe_read(r->pipe, r->buf + r->len, MAX_LINE - r->len);
        if (n == 0)
            return NULL;
        r->len += n;
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
        fail("out of memory");
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

static void send_request(pipe_end to_helper, const char *req)
{
    pipe_write_all(to_helper, req, strlen(req));
}

/* ---- One HTTP request to the app -------------------------------------- */

static app_socket connect_app(long port, char *host, size_t host_size)
{
    struct sockaddr_in v4;
    memset(&v4, 0, sizeof v4);
    v4.sin_family = AF_INET;
    v4.sin_port = htons((unsigned short)port);
    v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    app_socket s = socket(AF_INET, SOCK_STREAM, 0);
    if (s == BAD_SOCKET)
        die_socket("socket");
    if (connect(s, (struct sockaddr *)&v4, sizeof v4) == 0) {
        snprintf(host, host_size, "127.0.0.1:%ld", port);
        return s;
    }
    /* The protocol allows the app to listen on [::1] instead. */
    if (!connection_refused())
        die_socket("connect to 127.0.0.1");
    socket_close(s);

    struct sockaddr_in6 v6;
    memset(&v6, 0, sizeof v6);
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons((unsigned short)port);
    v6.sin6_addr = in6addr_loopback;
    s = socket(AF_INET6, SOCK_STREAM, 0);
    if (s == BAD_SOCKET)
        die_socket("socket");
    if (connect(s, (struct sockaddr *)&v6, sizeof v6) != 0)
        die_socket("connect to the app (127.0.0.1 and [::1])");
    snprintf(host, host_size, "[::1]:%ld", port);
    return s;
}

/* Sends `GET /` with the token and copies the answer to stdout. */
static void get_root(long port, const char *token)
{
    char host[64];
    app_socket s = connect_app(port, host, sizeof host);

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
    for (const char *p = req; len > 0;) {
        long n = socket_write(s, p, (size_t)len);
        if (n < 0)
            die_socket("send to the app");
        p += n;
        len -= (int)n;
    }

    /* Connection: close, so the app ends the response by closing. */
    char buf[4096];
    for (;;) {
        long n = socket_read(s, buf, sizeof buf);
        if (n < 0)
            die_socket("read from the app");
        if (n == 0)
            break;
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
            fail("cannot write to stdout");
    }
    /* Written out before the next step, so the order on stdout is clear. */
    if (fflush(stdout) != 0)
        fail("cannot write to stdout");
    socket_close(s);
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

/* Where the app listens, from a `ready` event. */
struct app {
    long pid;
    long port;
    char token[256];
};

/* Reads events until `ready` and fills `app` from it. A `failed` start, or
 * `recycleFailed` when recycling, ends the client with its reason. */
static void wait_ready(struct reader *r, struct app *app)
{
    char *line;
    while ((line = read_line(r)) != NULL) {
        if (is_event(line, "ready")) {
            app->port = get_number(line, "port", 65535);
            app->pid = get_number(line, "pid", LONG_MAX);
            if (app->port <= 0 || app->pid < 0 ||
                get_string(line, "token", app->token, sizeof app->token) != 0) {
                fprintf(stderr, "client: bad ready event: %s\n", line);
                exit(1);
            }
            return;
        }
        if (is_event(line, "failed") || is_event(line, "recycleFailed") ||
            is_event(line, "error")) {
            char reason[4096];
            const char *key = is_event(line, "error") ? "message" : "reason";
            if (get_string(line, key, reason, sizeof reason) != 0)
                strcpy(reason, "(no reason given)");
            fprintf(stderr, "client: the app did not start: %s\n", reason);
            exit(1);
        }
        /* starting, exited, paused, recycling and events newer than this
         * client. */
    }
    fail("the helper closed its output before \"ready\"");
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: client ANCM_BINARY APP_PATH [PROCESS_PATH]\n");
        return 2;
    }
    platform_init();

    pipe_end to_helper, from_helper;
    helper_process helper = spawn_helper(argv[1], &to_helper, &from_helper);
    static struct reader r; /* static: too big for some default stacks */
    r.pipe = from_helper;

    char *line = read_line(&r);
    if (line == NULL)
        fail("the helper closed its output before \"hello\"");
    if (!is_event(line, "hello") || get_number(line, "protocol", 1000) != 1) {
        fprintf(stderr, "client: unsupported helper protocol: %s\n", line);
        return 3;
    }

    char *req = start_request(argv[2], argc == 4 ? argv[3] : NULL);
    send_request(to_helper, req);
    free(req);
    struct app app;
    wait_ready(&r, &app);
    fprintf(stderr, "client: ready: pid=%ld port=%ld\n", app.pid, app.port);

    send_request(to_helper, "{\"op\":\"status\",\"id\":1}\n");
    line = wait_event(&r, "status");
    char state[32];
    if (get_string(line, "state", state, sizeof state) != 0 ||
        strcmp(state, "ready") != 0 ||
        get_number(line, "pid", LONG_MAX) != app.pid) {
        fprintf(stderr, "client: status is not the ready app: %s\n", line);
        return 1;
    }
    fprintf(stderr, "client: status: state=%s pid=%ld\n", state, app.pid);

    get_root(app.port, app.token);

    /* The new process is ready before the old one stops; requests go to
     * the new port with the new token from then on. */
    send_request(to_helper, "{\"op\":\"recycle\",\"id\":2}\n");
    long old_pid = app.pid;
    wait_ready(&r, &app);
    if (app.pid == old_pid) {
        fprintf(stderr, "client: the recycle kept pid %ld\n", old_pid);
        return 1;
    }
    fprintf(stderr, "client: recycled: pid=%ld port=%ld\n", app.pid, app.port);

    get_root(app.port, app.token);

    send_request(to_helper, "{\"op\":\"stop\",\"id\":3}\n");
    wait_event(&r, "stopped");
    pipe_close(to_helper);
    pipe_close(from_helper);
    return wait_helper(helper);
}
