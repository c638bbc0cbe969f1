
use builtin;
use str;

set edit:completion:arg-completer[ancm] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'ancm'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'ancm'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand run 'Start the app, proxy requests to it and keep it running until Ctrl+C'
            cand check 'Validate the app''s web.config and flags, and print the effective configuration'
            cand smoke 'Start the app behind the proxy, request some paths, stop: for CI'
            cand ls 'List the ancm instances running on this machine'
            cand status 'Show one running ancm instance in detail: its app, listeners and processes'
            cand logs 'Print a running instance''s last lines of app output, and follow it with -f'
            cand helper 'Serve a native web-server module over stdin/stdout (docs/helper-protocol.md)'
            cand completions 'Print the shell completion script for SHELL'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'ancm;run'= {
            cand --listen 'Address the proxy listens on (repeatable): IP:PORT, or PORT, :PORT or localhost:PORT for 127.0.0.1:PORT. Port 0 picks a free port'
            cand --tls-cert 'Serve HTTPS (HTTP/2 and HTTP/1.1) with this PEM certificate chain; needs --tls-key'
            cand --tls-key 'The PEM private key for --tls-cert'
            cand --tls-client-cert 'Ask HTTPS clients for a certificate and pass it to the app in MS-ASPNETCORE-CLIENTCERT, as IIS does: `optional` also serves clients without one, `require` refuses them'
            cand --tls-client-ca 'Accept only client certificates issued by a CA in this PEM bundle. Without it, any certificate is accepted whose key the client proves it holds'
            cand --header-read-timeout 'Close a client connection that takes longer than this to send a request''s headers (or its TLS handshake): 30, 30s, 500ms'
            cand --idle-timeout 'Close a client connection (HTTP/1.1 keep-alive or HTTP/2) that has had no request in progress for this long; HTTP/2 clients are told with GOAWAY: 75, 75s, 500ms'
            cand --send-timeout 'Close a client connection that takes nothing of a response for this long, as nginx''s send_timeout, and abort the app''s request; an HTTP/2 stream the client does not read is reset. 0 turns it off: 60, 60s, 500ms, 0'
            cand --max-request-head 'The largest HTTP/1.1 request head (request line and headers) taken; larger ones get 431. The default is http.sys''s (IIS''s MaxRequestBytes). It also bounds the response ancm queues for a client that does not read, so raising it costs memory per slow client: 16KiB, 64KiB, 32768'
            cand --shutdown-delay 'On a stop, keep serving this long with /readyz answering 503, so that load balancers and Kubernetes take this instance out before it stops accepting: 5s, 500ms. Overrides handlerSetting shutdownDelay and ANCM_shutdownDelay (milliseconds, as in ANCM)'
            cand --log-format 'How ancm writes its own lines and the app''s to the console: `text`, or `json` (one object per line: time, level, message, fields; the app''s lines with pid, slot and stream), for log shippers'
            cand --access-log 'Write one line per request in the W3C extended log format IIS writes (plus the app''s pid) to PATH (appended), or to stdout with `-`. Off by default'
            cand --admin 'Serve /healthz, /readyz, /status and /metrics (Prometheus) on ADDR, apart from the front: IP:PORT, PORT or localhost:PORT as for --listen, or a Unix socket path (with a `/`). Off by default'
            cand --admin-token 'Ask every admin request but /healthz and /readyz for `Authorization: Bearer TOKEN` (401 without it). Without a token, --admin on an address other than loopback is warned about at start'
            cand --admin-group 'Make the --admin socket path group-accessible (0660) to this group (a name or gid) rather than owner-only (0600)'
            cand --watch 'Recycle the app without downtime when a file matching GLOB (relative to the app folder) changes, as ANCM''s recycleOnFileChange would (repeatable). web.config is always watched'
            cand --ready-path 'A new process takes traffic only once a GET of PATH (sent as the proxy sends requests, with the pairing token) answers below 500, polled within startupTimeLimit. Wins over web.config''s <applicationInitialization> initializationPage'
            cand --health-path 'Probe each ready process with a GET of PATH every --health-interval; after --health-failures failures in a row (no answer within the interval, or 500 and above) it is replaced without downtime. Off by default'
            cand --health-interval 'How often --health-path is probed, and how long a probe may take: 10s, 500ms'
            cand --health-failures 'How many failed probes in a row replace the process (1-100)'
            cand --max-memory 'Replace, without downtime, a process whose tree (it and its descendants) uses more resident memory than SIZE: 512MiB, 2G. Off by default'
            cand --logs-keep 'How much of the app''s latest output `ancm logs` can show, at most 1,000 lines: SIZE of text, 1MiB by default. Lines are cut at 16 KiB'
            cand --recycle-every 'Replace each process, without downtime, after it has served this long: 24h, 90m. Off by default'
            cand --user 'Run the app as this user (a name or uid), with its groups and HOME, USER and LOGNAME; needs ancm to run as root. ancm itself keeps running as root'
            cand --process-path 'Overrides processPath: the executable to start'
            cand --arguments 'Overrides arguments (split the way Windows splits a command line)'
            cand --env 'Adds or overrides an environment variable for the app (repeatable)'
            cand --env-file 'Adds the variables of FILE (KEY=VALUE lines, systemd''s EnvironmentFile syntax) to the app''s environment, over web.config''s; --env wins over both'
            cand --stdout-log 'Turns the stdout log on, writing to PREFIX_<yyyyMMddHHmmss>_<pid>.log'
            cand --stdout-log-max-size 'With the stdout log on, start a new file once one passes SIZE (bytes, or 512K, 10M, 1G). Off by default, as in ANCM'
            cand --stdout-log-keep 'With the stdout log on, delete the oldest of its files beyond N. Off by default'
            cand --startup-time-limit 'Overrides startupTimeLimit: seconds the app has to start listening (0-3600)'
            cand --shutdown-time-limit 'Overrides shutdownTimeLimit: seconds the app has to stop before it is killed (0-600)'
            cand --rapid-fails-per-minute 'Overrides rapidFailsPerMinute: failures in a minute before restarts pause (0-100)'
            cand --request-timeout 'Overrides requestTimeout: 90, 90s, 2m, 1h or hh:mm:ss; 0 waits for ever'
            cand --max-request-body 'Overrides requestLimits maxAllowedContentLength: the largest request body in bytes (IIS''s default 30000000); 0 = no limit'
            cand --app-path 'The app''s virtual path, given to it as ASPNETCORE_APPL_PATH (default /)'
            cand --port-env 'Also export the app''s port under NAME, for apps that are not .NET (repeatable)'
            cand --forwarded-for 'X-Forwarded-For''s form: `ip` (1.2.3.4, ::1; the default with -- COMMAND) or `ip:port` (ANCM''s; the default with web.config)'
            cand --processes 'Overrides processesPerApplication: how many processes serve the app (1-100)'
            cand --launcher-path 'What %LAUNCHER_PATH% stands for (Visual Studio sets it for dev-time web.configs); default: the LAUNCHER_PATH environment variable'
            cand --launcher-args 'What %LAUNCHER_ARGS% stands for; default: the LAUNCHER_ARGS environment variable'
            cand --strip-app-path 'Forward requests under --app-path without that base, which goes to the app in X-Forwarded-Prefix instead (for apps that do not know their base)'
            cand --shutdown-message 'Send ANCM''s shutdown message (POST /iisintegration) before the stop signal, as web.config runs always do; -- COMMAND runs get the signal only'
            cand --lazy 'Start the app on the first request, as ANCM does, instead of at once'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ancm;check'= {
            cand --process-path 'Overrides processPath: the executable to start'
            cand --arguments 'Overrides arguments (split the way Windows splits a command line)'
            cand --env 'Adds or overrides an environment variable for the app (repeatable)'
            cand --env-file 'Adds the variables of FILE (KEY=VALUE lines, systemd''s EnvironmentFile syntax) to the app''s environment, over web.config''s; --env wins over both'
            cand --stdout-log 'Turns the stdout log on, writing to PREFIX_<yyyyMMddHHmmss>_<pid>.log'
            cand --stdout-log-max-size 'With the stdout log on, start a new file once one passes SIZE (bytes, or 512K, 10M, 1G). Off by default, as in ANCM'
            cand --stdout-log-keep 'With the stdout log on, delete the oldest of its files beyond N. Off by default'
            cand --startup-time-limit 'Overrides startupTimeLimit: seconds the app has to start listening (0-3600)'
            cand --shutdown-time-limit 'Overrides shutdownTimeLimit: seconds the app has to stop before it is killed (0-600)'
            cand --rapid-fails-per-minute 'Overrides rapidFailsPerMinute: failures in a minute before restarts pause (0-100)'
            cand --request-timeout 'Overrides requestTimeout: 90, 90s, 2m, 1h or hh:mm:ss; 0 waits for ever'
            cand --max-request-body 'Overrides requestLimits maxAllowedContentLength: the largest request body in bytes (IIS''s default 30000000); 0 = no limit'
            cand --app-path 'The app''s virtual path, given to it as ASPNETCORE_APPL_PATH (default /)'
            cand --port-env 'Also export the app''s port under NAME, for apps that are not .NET (repeatable)'
            cand --forwarded-for 'X-Forwarded-For''s form: `ip` (1.2.3.4, ::1; the default with -- COMMAND) or `ip:port` (ANCM''s; the default with web.config)'
            cand --processes 'Overrides processesPerApplication: how many processes serve the app (1-100)'
            cand --launcher-path 'What %LAUNCHER_PATH% stands for (Visual Studio sets it for dev-time web.configs); default: the LAUNCHER_PATH environment variable'
            cand --launcher-args 'What %LAUNCHER_ARGS% stands for; default: the LAUNCHER_ARGS environment variable'
            cand --json 'Print one JSON object instead of text'
            cand --strip-app-path 'Forward requests under --app-path without that base, which goes to the app in X-Forwarded-Prefix instead (for apps that do not know their base)'
            cand --shutdown-message 'Send ANCM''s shutdown message (POST /iisintegration) before the stop signal, as web.config runs always do; -- COMMAND runs get the signal only'
            cand --lazy 'Start the app on the first request, as ANCM does, instead of at once'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ancm;smoke'= {
            cand --path 'A path to GET through the proxy (repeatable; default /)'
            cand --expect 'The status every path must answer with'
            cand --timeout 'Fail if the app is not up and every check done within this many seconds'
            cand --process-path 'Overrides processPath: the executable to start'
            cand --arguments 'Overrides arguments (split the way Windows splits a command line)'
            cand --env 'Adds or overrides an environment variable for the app (repeatable)'
            cand --env-file 'Adds the variables of FILE (KEY=VALUE lines, systemd''s EnvironmentFile syntax) to the app''s environment, over web.config''s; --env wins over both'
            cand --stdout-log 'Turns the stdout log on, writing to PREFIX_<yyyyMMddHHmmss>_<pid>.log'
            cand --stdout-log-max-size 'With the stdout log on, start a new file once one passes SIZE (bytes, or 512K, 10M, 1G). Off by default, as in ANCM'
            cand --stdout-log-keep 'With the stdout log on, delete the oldest of its files beyond N. Off by default'
            cand --startup-time-limit 'Overrides startupTimeLimit: seconds the app has to start listening (0-3600)'
            cand --shutdown-time-limit 'Overrides shutdownTimeLimit: seconds the app has to stop before it is killed (0-600)'
            cand --rapid-fails-per-minute 'Overrides rapidFailsPerMinute: failures in a minute before restarts pause (0-100)'
            cand --request-timeout 'Overrides requestTimeout: 90, 90s, 2m, 1h or hh:mm:ss; 0 waits for ever'
            cand --max-request-body 'Overrides requestLimits maxAllowedContentLength: the largest request body in bytes (IIS''s default 30000000); 0 = no limit'
            cand --app-path 'The app''s virtual path, given to it as ASPNETCORE_APPL_PATH (default /)'
            cand --port-env 'Also export the app''s port under NAME, for apps that are not .NET (repeatable)'
            cand --forwarded-for 'X-Forwarded-For''s form: `ip` (1.2.3.4, ::1; the default with -- COMMAND) or `ip:port` (ANCM''s; the default with web.config)'
            cand --processes 'Overrides processesPerApplication: how many processes serve the app (1-100)'
            cand --launcher-path 'What %LAUNCHER_PATH% stands for (Visual Studio sets it for dev-time web.configs); default: the LAUNCHER_PATH environment variable'
            cand --launcher-args 'What %LAUNCHER_ARGS% stands for; default: the LAUNCHER_ARGS environment variable'
            cand --strip-app-path 'Forward requests under --app-path without that base, which goes to the app in X-Forwarded-Prefix instead (for apps that do not know their base)'
            cand --shutdown-message 'Send ANCM''s shutdown message (POST /iisintegration) before the stop signal, as web.config runs always do; -- COMMAND runs get the signal only'
            cand --lazy 'Start the app on the first request, as ANCM does, instead of at once'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ancm;ls'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ancm;status'= {
            cand --json 'Print the instance''s /status JSON instead of text'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ancm;logs'= {
            cand -n 'How many of the last lines to print first (ancm keeps the last 1000)'
            cand --lines 'How many of the last lines to print first (ancm keeps the last 1000)'
            cand -f 'Keep printing new lines as the app writes them, across restarts, until the instance stops (or Ctrl+C)'
            cand --follow 'Keep printing new lines as the app writes them, across restarts, until the instance stops (or Ctrl+C)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ancm;helper'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ancm;completions'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'ancm;help'= {
            cand run 'Start the app, proxy requests to it and keep it running until Ctrl+C'
            cand check 'Validate the app''s web.config and flags, and print the effective configuration'
            cand smoke 'Start the app behind the proxy, request some paths, stop: for CI'
            cand ls 'List the ancm instances running on this machine'
            cand status 'Show one running ancm instance in detail: its app, listeners and processes'
            cand logs 'Print a running instance''s last lines of app output, and follow it with -f'
            cand helper 'Serve a native web-server module over stdin/stdout (docs/helper-protocol.md)'
            cand completions 'Print the shell completion script for SHELL'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'ancm;help;run'= {
        }
        &'ancm;help;check'= {
        }
        &'ancm;help;smoke'= {
        }
        &'ancm;help;ls'= {
        }
        &'ancm;help;status'= {
        }
        &'ancm;help;logs'= {
        }
        &'ancm;help;helper'= {
        }
        &'ancm;help;completions'= {
        }
        &'ancm;help;help'= {
        }
    ]
    $completions[$command]
}
