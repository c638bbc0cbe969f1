
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'ancm' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'ancm'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'ancm' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Start the app, proxy requests to it and keep it running until Ctrl+C')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Validate the app''s web.config and flags, and print the effective configuration')
            [CompletionResult]::new('smoke', 'smoke', [CompletionResultType]::ParameterValue, 'Start the app behind the proxy, request some paths, stop: for CI')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the ancm instances running on this machine')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show one running ancm instance in detail: its app, listeners and processes')
            [CompletionResult]::new('logs', 'logs', [CompletionResultType]::ParameterValue, 'Print a running instance''s last lines of app output, and follow it with -f')
            [CompletionResult]::new('helper', 'helper', [CompletionResultType]::ParameterValue, 'Serve a native web-server module over stdin/stdout (docs/helper-protocol.md)')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print the shell completion script for SHELL')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'ancm;run' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address the proxy listens on (repeatable): IP:PORT, or PORT, :PORT or localhost:PORT for 127.0.0.1:PORT. Port 0 picks a free port')
            [CompletionResult]::new('--tls-cert', '--tls-cert', [CompletionResultType]::ParameterName, 'Serve HTTPS (HTTP/2 and HTTP/1.1) with this PEM certificate chain; needs --tls-key')
            [CompletionResult]::new('--tls-key', '--tls-key', [CompletionResultType]::ParameterName, 'The PEM private key for --tls-cert')
            [CompletionResult]::new('--tls-client-cert', '--tls-client-cert', [CompletionResultType]::ParameterName, 'Ask HTTPS clients for a certificate and pass it to the app in MS-ASPNETCORE-CLIENTCERT, as IIS does: `optional` also serves clients without one, `require` refuses them')
            [CompletionResult]::new('--tls-client-ca', '--tls-client-ca', [CompletionResultType]::ParameterName, 'Accept only client certificates issued by a CA in this PEM bundle. Without it, any certificate is accepted whose key the client proves it holds')
            [CompletionResult]::new('--header-read-timeout', '--header-read-timeout', [CompletionResultType]::ParameterName, 'Close a client connection that takes longer than this to send a request''s headers (or its TLS handshake): 30, 30s, 500ms')
            [CompletionResult]::new('--idle-timeout', '--idle-timeout', [CompletionResultType]::ParameterName, 'Close a client connection (HTTP/1.1 keep-alive or HTTP/2) that has had no request in progress for this long; HTTP/2 clients are told with GOAWAY: 75, 75s, 500ms')
            [CompletionResult]::new('--send-timeout', '--send-timeout', [CompletionResultType]::ParameterName, 'Close a client connection that takes nothing of a response for this long, as nginx''s send_timeout, and abort the app''s request; an HTTP/2 stream the client does not read is reset. 0 turns it off: 60, 60s, 500ms, 0')
            [CompletionResult]::new('--max-request-head', '--max-request-head', [CompletionResultType]::ParameterName, 'The largest HTTP/1.1 request head (request line and headers) taken; larger ones get 431. The default is http.sys''s (IIS''s MaxRequestBytes). It also bounds the response ancm queues for a client that does not read, so raising it costs memory per slow client: 16KiB, 64KiB, 32768')
            [CompletionResult]::new('--shutdown-delay', '--shutdown-delay', [CompletionResultType]::ParameterName, 'On a stop, keep serving this long with /readyz answering 503, so that load balancers and Kubernetes take this instance out before it stops accepting: 5s, 500ms. Overrides handlerSetting shutdownDelay and ANCM_shutdownDelay (milliseconds, as in ANCM)')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'How ancm writes its own lines and the app''s to the console: `text`, or `json` (one object per line: time, level, message, fields; the app''s lines with pid, slot and stream), for log shippers')
            [CompletionResult]::new('--access-log', '--access-log', [CompletionResultType]::ParameterName, 'Write one line per request in the W3C extended log format IIS writes (plus the app''s pid) to PATH (appended), or to stdout with `-`. Off by default')
            [CompletionResult]::new('--admin', '--admin', [CompletionResultType]::ParameterName, 'Serve /healthz, /readyz, /status and /metrics (Prometheus) on ADDR, apart from the front: IP:PORT, PORT or localhost:PORT as for --listen, or a Unix socket path (with a `/`). Off by default')
            [CompletionResult]::new('--admin-token', '--admin-token', [CompletionResultType]::ParameterName, 'Ask every admin request but /healthz and /readyz for `Authorization: Bearer TOKEN` (401 without it). Without a token, --admin on an address other than loopback is warned about at start')
            [CompletionResult]::new('--admin-group', '--admin-group', [CompletionResultType]::ParameterName, 'Make the --admin socket path group-accessible (0660) to this group (a name or gid) rather than owner-only (0600)')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Recycle the app without downtime when a file matching GLOB (relative to the app folder) changes, as ANCM''s recycleOnFileChange would (repeatable). web.config is always watched')
            [CompletionResult]::new('--ready-path', '--ready-path', [CompletionResultType]::ParameterName, 'A new process takes traffic only once a GET of PATH (sent as the proxy sends requests, with the pairing token) answers below 500, polled within startupTimeLimit. Wins over web.config''s <applicationInitialization> initializationPage')
            [CompletionResult]::new('--health-path', '--health-path', [CompletionResultType]::ParameterName, 'Probe each ready process with a GET of PATH every --health-interval; after --health-failures failures in a row (no answer within the interval, or 500 and above) it is replaced without downtime. Off by default')
            [CompletionResult]::new('--health-interval', '--health-interval', [CompletionResultType]::ParameterName, 'How often --health-path is probed, and how long a probe may take: 10s, 500ms')
            [CompletionResult]::new('--health-failures', '--health-failures', [CompletionResultType]::ParameterName, 'How many failed probes in a row replace the process (1-100)')
            [CompletionResult]::new('--max-memory', '--max-memory', [CompletionResultType]::ParameterName, 'Replace, without downtime, a process whose tree (it and its descendants) uses more resident memory than SIZE: 512MiB, 2G. Off by default')
            [CompletionResult]::new('--logs-keep', '--logs-keep', [CompletionResultType]::ParameterName, 'How much of the app''s latest output `ancm logs` can show, at most 1,000 lines: SIZE of text, 1MiB by default. Lines are cut at 16 KiB')
            [CompletionResult]::new('--recycle-every', '--recycle-every', [CompletionResultType]::ParameterName, 'Replace each process, without downtime, after it has served this long: 24h, 90m. Off by default')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Run the app as this user (a name or uid), with its groups and HOME, USER and LOGNAME; needs ancm to run as root. ancm itself keeps running as root')
            [CompletionResult]::new('--process-path', '--process-path', [CompletionResultType]::ParameterName, 'Overrides processPath: the executable to start')
            [CompletionResult]::new('--arguments', '--arguments', [CompletionResultType]::ParameterName, 'Overrides arguments (split the way Windows splits a command line)')
            [CompletionResult]::new('--env', '--env', [CompletionResultType]::ParameterName, 'Adds or overrides an environment variable for the app (repeatable)')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'Adds the variables of FILE (KEY=VALUE lines, systemd''s EnvironmentFile syntax) to the app''s environment, over web.config''s; --env wins over both')
            [CompletionResult]::new('--stdout-log', '--stdout-log', [CompletionResultType]::ParameterName, 'Turns the stdout log on, writing to PREFIX_<yyyyMMddHHmmss>_<pid>.log')
            [CompletionResult]::new('--stdout-log-max-size', '--stdout-log-max-size', [CompletionResultType]::ParameterName, 'With the stdout log on, start a new file once one passes SIZE (bytes, or 512K, 10M, 1G). Off by default, as in ANCM')
            [CompletionResult]::new('--stdout-log-keep', '--stdout-log-keep', [CompletionResultType]::ParameterName, 'With the stdout log on, delete the oldest of its files beyond N. Off by default')
            [CompletionResult]::new('--startup-time-limit', '--startup-time-limit', [CompletionResultType]::ParameterName, 'Overrides startupTimeLimit: seconds the app has to start listening (0-3600)')
            [CompletionResult]::new('--shutdown-time-limit', '--shutdown-time-limit', [CompletionResultType]::ParameterName, 'Overrides shutdownTimeLimit: seconds the app has to stop before it is killed (0-600)')
            [CompletionResult]::new('--rapid-fails-per-minute', '--rapid-fails-per-minute', [CompletionResultType]::ParameterName, 'Overrides rapidFailsPerMinute: failures in a minute before restarts pause (0-100)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Overrides requestTimeout: 90, 90s, 2m, 1h or hh:mm:ss; 0 waits for ever')
            [CompletionResult]::new('--max-request-body', '--max-request-body', [CompletionResultType]::ParameterName, 'Overrides requestLimits maxAllowedContentLength: the largest request body in bytes (IIS''s default 30000000); 0 = no limit')
            [CompletionResult]::new('--app-path', '--app-path', [CompletionResultType]::ParameterName, 'The app''s virtual path, given to it as ASPNETCORE_APPL_PATH (default /)')
            [CompletionResult]::new('--port-env', '--port-env', [CompletionResultType]::ParameterName, 'Also export the app''s port under NAME, for apps that are not .NET (repeatable)')
            [CompletionResult]::new('--forwarded-for', '--forwarded-for', [CompletionResultType]::ParameterName, 'X-Forwarded-For''s form: `ip` (1.2.3.4, ::1; the default with -- COMMAND) or `ip:port` (ANCM''s; the default with web.config)')
            [CompletionResult]::new('--processes', '--processes', [CompletionResultType]::ParameterName, 'Overrides processesPerApplication: how many processes serve the app (1-100)')
            [CompletionResult]::new('--launcher-path', '--launcher-path', [CompletionResultType]::ParameterName, 'What %LAUNCHER_PATH% stands for (Visual Studio sets it for dev-time web.configs); default: the LAUNCHER_PATH environment variable')
            [CompletionResult]::new('--launcher-args', '--launcher-args', [CompletionResultType]::ParameterName, 'What %LAUNCHER_ARGS% stands for; default: the LAUNCHER_ARGS environment variable')
            [CompletionResult]::new('--strip-app-path', '--strip-app-path', [CompletionResultType]::ParameterName, 'Forward requests under --app-path without that base, which goes to the app in X-Forwarded-Prefix instead (for apps that do not know their base)')
            [CompletionResult]::new('--shutdown-message', '--shutdown-message', [CompletionResultType]::ParameterName, 'Send ANCM''s shutdown message (POST /iisintegration) before the stop signal, as web.config runs always do; -- COMMAND runs get the signal only')
            [CompletionResult]::new('--lazy', '--lazy', [CompletionResultType]::ParameterName, 'Start the app on the first request, as ANCM does, instead of at once')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'ancm;check' {
            [CompletionResult]::new('--process-path', '--process-path', [CompletionResultType]::ParameterName, 'Overrides processPath: the executable to start')
            [CompletionResult]::new('--arguments', '--arguments', [CompletionResultType]::ParameterName, 'Overrides arguments (split the way Windows splits a command line)')
            [CompletionResult]::new('--env', '--env', [CompletionResultType]::ParameterName, 'Adds or overrides an environment variable for the app (repeatable)')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'Adds the variables of FILE (KEY=VALUE lines, systemd''s EnvironmentFile syntax) to the app''s environment, over web.config''s; --env wins over both')
            [CompletionResult]::new('--stdout-log', '--stdout-log', [CompletionResultType]::ParameterName, 'Turns the stdout log on, writing to PREFIX_<yyyyMMddHHmmss>_<pid>.log')
            [CompletionResult]::new('--stdout-log-max-size', '--stdout-log-max-size', [CompletionResultType]::ParameterName, 'With the stdout log on, start a new file once one passes SIZE (bytes, or 512K, 10M, 1G). Off by default, as in ANCM')
            [CompletionResult]::new('--stdout-log-keep', '--stdout-log-keep', [CompletionResultType]::ParameterName, 'With the stdout log on, delete the oldest of its files beyond N. Off by default')
            [CompletionResult]::new('--startup-time-limit', '--startup-time-limit', [CompletionResultType]::ParameterName, 'Overrides startupTimeLimit: seconds the app has to start listening (0-3600)')
            [CompletionResult]::new('--shutdown-time-limit', '--shutdown-time-limit', [CompletionResultType]::ParameterName, 'Overrides shutdownTimeLimit: seconds the app has to stop before it is killed (0-600)')
            [CompletionResult]::new('--rapid-fails-per-minute', '--rapid-fails-per-minute', [CompletionResultType]::ParameterName, 'Overrides rapidFailsPerMinute: failures in a minute before restarts pause (0-100)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Overrides requestTimeout: 90, 90s, 2m, 1h or hh:mm:ss; 0 waits for ever')
            [CompletionResult]::new('--max-request-body', '--max-request-body', [CompletionResultType]::ParameterName, 'Overrides requestLimits maxAllowedContentLength: the largest request body in bytes (IIS''s default 30000000); 0 = no limit')
            [CompletionResult]::new('--app-path', '--app-path', [CompletionResultType]::ParameterName, 'The app''s virtual path, given to it as ASPNETCORE_APPL_PATH (default /)')
            [CompletionResult]::new('--port-env', '--port-env', [CompletionResultType]::ParameterName, 'Also export the app''s port under NAME, for apps that are not .NET (repeatable)')
            [CompletionResult]::new('--forwarded-for', '--forwarded-for', [CompletionResultType]::ParameterName, 'X-Forwarded-For''s form: `ip` (1.2.3.4, ::1; the default with -- COMMAND) or `ip:port` (ANCM''s; the default with web.config)')
            [CompletionResult]::new('--processes', '--processes', [CompletionResultType]::ParameterName, 'Overrides processesPerApplication: how many processes serve the app (1-100)')
            [CompletionResult]::new('--launcher-path', '--launcher-path', [CompletionResultType]::ParameterName, 'What %LAUNCHER_PATH% stands for (Visual Studio sets it for dev-time web.configs); default: the LAUNCHER_PATH environment variable')
            [CompletionResult]::new('--launcher-args', '--launcher-args', [CompletionResultType]::ParameterName, 'What %LAUNCHER_ARGS% stands for; default: the LAUNCHER_ARGS environment variable')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print one JSON object instead of text')
            [CompletionResult]::new('--strip-app-path', '--strip-app-path', [CompletionResultType]::ParameterName, 'Forward requests under --app-path without that base, which goes to the app in X-Forwarded-Prefix instead (for apps that do not know their base)')
            [CompletionResult]::new('--shutdown-message', '--shutdown-message', [CompletionResultType]::ParameterName, 'Send ANCM''s shutdown message (POST /iisintegration) before the stop signal, as web.config runs always do; -- COMMAND runs get the signal only')
            [CompletionResult]::new('--lazy', '--lazy', [CompletionResultType]::ParameterName, 'Start the app on the first request, as ANCM does, instead of at once')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'ancm;smoke' {
            [CompletionResult]::new('--path', '--path', [CompletionResultType]::ParameterName, 'A path to GET through the proxy (repeatable; default /)')
            [CompletionResult]::new('--expect', '--expect', [CompletionResultType]::ParameterName, 'The status every path must answer with')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Fail if the app is not up and every check done within this many seconds')
            [CompletionResult]::new('--process-path', '--process-path', [CompletionResultType]::ParameterName, 'Overrides processPath: the executable to start')
            [CompletionResult]::new('--arguments', '--arguments', [CompletionResultType]::ParameterName, 'Overrides arguments (split the way Windows splits a command line)')
            [CompletionResult]::new('--env', '--env', [CompletionResultType]::ParameterName, 'Adds or overrides an environment variable for the app (repeatable)')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'Adds the variables of FILE (KEY=VALUE lines, systemd''s EnvironmentFile syntax) to the app''s environment, over web.config''s; --env wins over both')
            [CompletionResult]::new('--stdout-log', '--stdout-log', [CompletionResultType]::ParameterName, 'Turns the stdout log on, writing to PREFIX_<yyyyMMddHHmmss>_<pid>.log')
            [CompletionResult]::new('--stdout-log-max-size', '--stdout-log-max-size', [CompletionResultType]::ParameterName, 'With the stdout log on, start a new file once one passes SIZE (bytes, or 512K, 10M, 1G). Off by default, as in ANCM')
            [CompletionResult]::new('--stdout-log-keep', '--stdout-log-keep', [CompletionResultType]::ParameterName, 'With the stdout log on, delete the oldest of its files beyond N. Off by default')
            [CompletionResult]::new('--startup-time-limit', '--startup-time-limit', [CompletionResultType]::ParameterName, 'Overrides startupTimeLimit: seconds the app has to start listening (0-3600)')
            [CompletionResult]::new('--shutdown-time-limit', '--shutdown-time-limit', [CompletionResultType]::ParameterName, 'Overrides shutdownTimeLimit: seconds the app has to stop before it is killed (0-600)')
            [CompletionResult]::new('--rapid-fails-per-minute', '--rapid-fails-per-minute', [CompletionResultType]::ParameterName, 'Overrides rapidFailsPerMinute: failures in a minute before restarts pause (0-100)')
            [CompletionResult]::new('--request-timeout', '--request-timeout', [CompletionResultType]::ParameterName, 'Overrides requestTimeout: 90, 90s, 2m, 1h or hh:mm:ss; 0 waits for ever')
            [CompletionResult]::new('--max-request-body', '--max-request-body', [CompletionResultType]::ParameterName, 'Overrides requestLimits maxAllowedContentLength: the largest request body in bytes (IIS''s default 30000000); 0 = no limit')
            [CompletionResult]::new('--app-path', '--app-path', [CompletionResultType]::ParameterName, 'The app''s virtual path, given to it as ASPNETCORE_APPL_PATH (default /)')
            [CompletionResult]::new('--port-env', '--port-env', [CompletionResultType]::ParameterName, 'Also export the app''s port under NAME, for apps that are not .NET (repeatable)')
            [CompletionResult]::new('--forwarded-for', '--forwarded-for', [CompletionResultType]::ParameterName, 'X-Forwarded-For''s form: `ip` (1.2.3.4, ::1; the default with -- COMMAND) or `ip:port` (ANCM''s; the default with web.config)')
            [CompletionResult]::new('--processes', '--processes', [CompletionResultType]::ParameterName, 'Overrides processesPerApplication: how many processes serve the app (1-100)')
            [CompletionResult]::new('--launcher-path', '--launcher-path', [CompletionResultType]::ParameterName, 'What %LAUNCHER_PATH% stands for (Visual Studio sets it for dev-time web.configs); default: the LAUNCHER_PATH environment variable')
            [CompletionResult]::new('--launcher-args', '--launcher-args', [CompletionResultType]::ParameterName, 'What %LAUNCHER_ARGS% stands for; default: the LAUNCHER_ARGS environment variable')
            [CompletionResult]::new('--strip-app-path', '--strip-app-path', [CompletionResultType]::ParameterName, 'Forward requests under --app-path without that base, which goes to the app in X-Forwarded-Prefix instead (for apps that do not know their base)')
            [CompletionResult]::new('--shutdown-message', '--shutdown-message', [CompletionResultType]::ParameterName, 'Send ANCM''s shutdown message (POST /iisintegration) before the stop signal, as web.config runs always do; -- COMMAND runs get the signal only')
            [CompletionResult]::new('--lazy', '--lazy', [CompletionResultType]::ParameterName, 'Start the app on the first request, as ANCM does, instead of at once')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'ancm;ls' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'ancm;status' {
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print the instance''s /status JSON instead of text')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'ancm;logs' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'How many of the last lines to print first (ancm keeps the last 1000)')
            [CompletionResult]::new('--lines', '--lines', [CompletionResultType]::ParameterName, 'How many of the last lines to print first (ancm keeps the last 1000)')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Keep printing new lines as the app writes them, across restarts, until the instance stops (or Ctrl+C)')
            [CompletionResult]::new('--follow', '--follow', [CompletionResultType]::ParameterName, 'Keep printing new lines as the app writes them, across restarts, until the instance stops (or Ctrl+C)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'ancm;helper' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'ancm;completions' {
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'ancm;help' {
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Start the app, proxy requests to it and keep it running until Ctrl+C')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Validate the app''s web.config and flags, and print the effective configuration')
            [CompletionResult]::new('smoke', 'smoke', [CompletionResultType]::ParameterValue, 'Start the app behind the proxy, request some paths, stop: for CI')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List the ancm instances running on this machine')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show one running ancm instance in detail: its app, listeners and processes')
            [CompletionResult]::new('logs', 'logs', [CompletionResultType]::ParameterValue, 'Print a running instance''s last lines of app output, and follow it with -f')
            [CompletionResult]::new('helper', 'helper', [CompletionResultType]::ParameterValue, 'Serve a native web-server module over stdin/stdout (docs/helper-protocol.md)')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print the shell completion script for SHELL')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'ancm;help;run' {
            break
        }
        'ancm;help;check' {
            break
        }
        'ancm;help;smoke' {
            break
        }
        'ancm;help;ls' {
            break
        }
        'ancm;help;status' {
            break
        }
        'ancm;help;logs' {
            break
        }
        'ancm;help;helper' {
            break
        }
        'ancm;help;completions' {
            break
        }
        'ancm;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
