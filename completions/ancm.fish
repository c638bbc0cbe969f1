# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_ancm_global_optspecs
    string join \n h/help V/version
end

function __fish_ancm_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_ancm_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_ancm_using_subcommand
    set -l cmd (__fish_ancm_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c ancm -n "__fish_ancm_needs_command" -s h -l help -d 'Print help'
complete -c ancm -n "__fish_ancm_needs_command" -s V -l version -d 'Print version'
complete -c ancm -n "__fish_ancm_needs_command" -f -a "run" -d 'Start the app, proxy requests to it and keep it running until Ctrl+C'
complete -c ancm -n "__fish_ancm_needs_command" -f -a "check" -d 'Validate the app\'s web.config and flags, and print the effective configuration'
complete -c ancm -n "__fish_ancm_needs_command" -f -a "smoke" -d 'Start the app behind the proxy, request some paths, stop: for CI'
complete -c ancm -n "__fish_ancm_needs_command" -f -a "ls" -d 'List the ancm instances running on this machine'
complete -c ancm -n "__fish_ancm_needs_command" -f -a "status" -d 'Show one running ancm instance in detail: its app, listeners and processes'
complete -c ancm -n "__fish_ancm_needs_command" -f -a "logs" -d 'Print a running instance\'s last lines of app output, and follow it with -f'
complete -c ancm -n "__fish_ancm_needs_command" -f -a "helper" -d 'Serve a native web-server module over stdin/stdout (docs/helper-protocol.md)'
complete -c ancm -n "__fish_ancm_needs_command" -f -a "completions" -d 'Print the shell completion script for SHELL'
complete -c ancm -n "__fish_ancm_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c ancm -n "__fish_ancm_using_subcommand run" -l listen -d 'Address the proxy listens on (repeatable): IP:PORT, or PORT, :PORT or localhost:PORT for 127.0.0.1:PORT. Port 0 picks a free port' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l tls-cert -d 'Serve HTTPS (HTTP/2 and HTTP/1.1) with this PEM certificate chain; needs --tls-key' -r -F
complete -c ancm -n "__fish_ancm_using_subcommand run" -l tls-key -d 'The PEM private key for --tls-cert' -r -F
complete -c ancm -n "__fish_ancm_using_subcommand run" -l tls-client-cert -d 'Ask HTTPS clients for a certificate and pass it to the app in MS-ASPNETCORE-CLIENTCERT, as IIS does: `optional` also serves clients without one, `require` refuses them' -r -f -a "optional\t'Ask for a certificate; serve clients that send none'
require\t'Refuse the handshake of a client that sends none'"
complete -c ancm -n "__fish_ancm_using_subcommand run" -l tls-client-ca -d 'Accept only client certificates issued by a CA in this PEM bundle. Without it, any certificate is accepted whose key the client proves it holds' -r -F
complete -c ancm -n "__fish_ancm_using_subcommand run" -l header-read-timeout -d 'Close a client connection that takes longer than this to send a request\'s headers (or its TLS handshake): 30, 30s, 500ms' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l idle-timeout -d 'Close a client connection (HTTP/1.1 keep-alive or HTTP/2) that has had no request in progress for this long; HTTP/2 clients are told with GOAWAY: 75, 75s, 500ms' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l send-timeout -d 'Close a client connection that takes nothing of a response for this long, as nginx\'s send_timeout, and abort the app\'s request; an HTTP/2 stream the client does not read is reset. 0 turns it off: 60, 60s, 500ms, 0' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l max-request-head -d 'The largest HTTP/1.1 request head (request line and headers) taken; larger ones get 431. The default is http.sys\'s (IIS\'s MaxRequestBytes). It also bounds the response ancm queues for a client that does not read, so raising it costs memory per slow client: 16KiB, 64KiB, 32768' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l shutdown-delay -d 'On a stop, keep serving this long with /readyz answering 503, so that load balancers and Kubernetes take this instance out before it stops accepting: 5s, 500ms. Overrides handlerSetting shutdownDelay and ANCM_shutdownDelay (milliseconds, as in ANCM)' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l log-format -d 'How ancm writes its own lines and the app\'s to the console: `text`, or `json` (one object per line: time, level, message, fields; the app\'s lines with pid, slot and stream), for log shippers' -r -f -a "text\t'Lines for people'
json\t'One JSON object per line, for log shippers'"
complete -c ancm -n "__fish_ancm_using_subcommand run" -l access-log -d 'Write one line per request in the W3C extended log format IIS writes (plus the app\'s pid) to PATH (appended), or to stdout with `-`. Off by default' -r -F
complete -c ancm -n "__fish_ancm_using_subcommand run" -l admin -d 'Serve /healthz, /readyz, /status and /metrics (Prometheus) on ADDR, apart from the front: IP:PORT, PORT or localhost:PORT as for --listen, or a Unix socket path (with a `/`). Off by default' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l admin-token -d 'Ask every admin request but /healthz and /readyz for `Authorization: Bearer TOKEN` (401 without it). Without a token, --admin on an address other than loopback is warned about at start' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l admin-group -d 'Make the --admin socket path group-accessible (0660) to this group (a name or gid) rather than owner-only (0600)' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l watch -d 'Recycle the app without downtime when a file matching GLOB (relative to the app folder) changes, as ANCM\'s recycleOnFileChange would (repeatable). web.config is always watched' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l ready-path -d 'A new process takes traffic only once a GET of PATH (sent as the proxy sends requests, with the pairing token) answers below 500, polled within startupTimeLimit. Wins over web.config\'s <applicationInitialization> initializationPage' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l health-path -d 'Probe each ready process with a GET of PATH every --health-interval; after --health-failures failures in a row (no answer within the interval, or 500 and above) it is replaced without downtime. Off by default' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l health-interval -d 'How often --health-path is probed, and how long a probe may take: 10s, 500ms' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l health-failures -d 'How many failed probes in a row replace the process (1-100)' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l max-memory -d 'Replace, without downtime, a process whose tree (it and its descendants) uses more resident memory than SIZE: 512MiB, 2G. Off by default' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l logs-keep -d 'How much of the app\'s latest output `ancm logs` can show, at most 1,000 lines: SIZE of text, 1MiB by default. Lines are cut at 16 KiB' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l recycle-every -d 'Replace each process, without downtime, after it has served this long: 24h, 90m. Off by default' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l user -d 'Run the app as this user (a name or uid), with its groups and HOME, USER and LOGNAME; needs ancm to run as root. ancm itself keeps running as root' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l process-path -d 'Overrides processPath: the executable to start' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l arguments -d 'Overrides arguments (split the way Windows splits a command line)' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l env -d 'Adds or overrides an environment variable for the app (repeatable)' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l env-file -d 'Adds the variables of FILE (KEY=VALUE lines, systemd\'s EnvironmentFile syntax) to the app\'s environment, over web.config\'s; --env wins over both' -r -F
complete -c ancm -n "__fish_ancm_using_subcommand run" -l stdout-log -d 'Turns the stdout log on, writing to PREFIX_<yyyyMMddHHmmss>_<pid>.log' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l stdout-log-max-size -d 'With the stdout log on, start a new file once one passes SIZE (bytes, or 512K, 10M, 1G). Off by default, as in ANCM' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l stdout-log-keep -d 'With the stdout log on, delete the oldest of its files beyond N. Off by default' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l startup-time-limit -d 'Overrides startupTimeLimit: seconds the app has to start listening (0-3600)' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l shutdown-time-limit -d 'Overrides shutdownTimeLimit: seconds the app has to stop before it is killed (0-600)' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l rapid-fails-per-minute -d 'Overrides rapidFailsPerMinute: failures in a minute before restarts pause (0-100)' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l request-timeout -d 'Overrides requestTimeout: 90, 90s, 2m, 1h or hh:mm:ss; 0 waits for ever' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l max-request-body -d 'Overrides requestLimits maxAllowedContentLength: the largest request body in bytes (IIS\'s default 30000000); 0 = no limit' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l app-path -d 'The app\'s virtual path, given to it as ASPNETCORE_APPL_PATH (default /)' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l port-env -d 'Also export the app\'s port under NAME, for apps that are not .NET (repeatable)' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l forwarded-for -d 'X-Forwarded-For\'s form: `ip` (1.2.3.4, ::1; the default with -- COMMAND) or `ip:port` (ANCM\'s; the default with web.config)' -r -f -a "ip\t''
ip:port\t''"
complete -c ancm -n "__fish_ancm_using_subcommand run" -l processes -d 'Overrides processesPerApplication: how many processes serve the app (1-100)' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l launcher-path -d 'What %LAUNCHER_PATH% stands for (Visual Studio sets it for dev-time web.configs); default: the LAUNCHER_PATH environment variable' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l launcher-args -d 'What %LAUNCHER_ARGS% stands for; default: the LAUNCHER_ARGS environment variable' -r
complete -c ancm -n "__fish_ancm_using_subcommand run" -l strip-app-path -d 'Forward requests under --app-path without that base, which goes to the app in X-Forwarded-Prefix instead (for apps that do not know their base)'
complete -c ancm -n "__fish_ancm_using_subcommand run" -l shutdown-message -d 'Send ANCM\'s shutdown message (POST /iisintegration) before the stop signal, as web.config runs always do; -- COMMAND runs get the signal only'
complete -c ancm -n "__fish_ancm_using_subcommand run" -l lazy -d 'Start the app on the first request, as ANCM does, instead of at once'
complete -c ancm -n "__fish_ancm_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c ancm -n "__fish_ancm_using_subcommand run" -s V -l version -d 'Print version'
complete -c ancm -n "__fish_ancm_using_subcommand check" -l process-path -d 'Overrides processPath: the executable to start' -r
complete -c ancm -n "__fish_ancm_using_subcommand check" -l arguments -d 'Overrides arguments (split the way Windows splits a command line)' -r
complete -c ancm -n "__fish_ancm_using_subcommand check" -l env -d 'Adds or overrides an environment variable for the app (repeatable)' -r
complete -c ancm -n "__fish_ancm_using_subcommand check" -l env-file -d 'Adds the variables of FILE (KEY=VALUE lines, systemd\'s EnvironmentFile syntax) to the app\'s environment, over web.config\'s; --env wins over both' -r -F
complete -c ancm -n "__fish_ancm_using_subcommand check" -l stdout-log -d 'Turns the stdout log on, writing to PREFIX_<yyyyMMddHHmmss>_<pid>.log' -r
complete -c ancm -n "__fish_ancm_using_subcommand check" -l stdout-log-max-size -d 'With the stdout log on, start a new file once one passes SIZE (bytes, or 512K, 10M, 1G). Off by default, as in ANCM' -r
complete -c ancm -n "__fish_ancm_using_subcommand check" -l stdout-log-keep -d 'With the stdout log on, delete the oldest of its files beyond N. Off by default' -r
complete -c ancm -n "__fish_ancm_using_subcommand check" -l startup-time-limit -d 'Overrides startupTimeLimit: seconds the app has to start listening (0-3600)' -r
complete -c ancm -n "__fish_ancm_using_subcommand check" -l shutdown-time-limit -d 'Overrides shutdownTimeLimit: seconds the app has to stop before it is killed (0-600)' -r
complete -c ancm -n "__fish_ancm_using_subcommand check" -l rapid-fails-per-minute -d 'Overrides rapidFailsPerMinute: failures in a minute before restarts pause (0-100)' -r
complete -c ancm -n "__fish_ancm_using_subcommand check" -l request-timeout -d 'Overrides requestTimeout: 90, 90s, 2m, 1h or hh:mm:ss; 0 waits for ever' -r
complete -c ancm -n "__fish_ancm_using_subcommand check" -l max-request-body -d 'Overrides requestLimits maxAllowedContentLength: the largest request body in bytes (IIS\'s default 30000000); 0 = no limit' -r
complete -c ancm -n "__fish_ancm_using_subcommand check" -l app-path -d 'The app\'s virtual path, given to it as ASPNETCORE_APPL_PATH (default /)' -r
complete -c ancm -n "__fish_ancm_using_subcommand check" -l port-env -d 'Also export the app\'s port under NAME, for apps that are not .NET (repeatable)' -r
complete -c ancm -n "__fish_ancm_using_subcommand check" -l forwarded-for -d 'X-Forwarded-For\'s form: `ip` (1.2.3.4, ::1; the default with -- COMMAND) or `ip:port` (ANCM\'s; the default with web.config)' -r -f -a "ip\t''
ip:port\t''"
complete -c ancm -n "__fish_ancm_using_subcommand check" -l processes -d 'Overrides processesPerApplication: how many processes serve the app (1-100)' -r
complete -c ancm -n "__fish_ancm_using_subcommand check" -l launcher-path -d 'What %LAUNCHER_PATH% stands for (Visual Studio sets it for dev-time web.configs); default: the LAUNCHER_PATH environment variable' -r
complete -c ancm -n "__fish_ancm_using_subcommand check" -l launcher-args -d 'What %LAUNCHER_ARGS% stands for; default: the LAUNCHER_ARGS environment variable' -r
complete -c ancm -n "__fish_ancm_using_subcommand check" -l json -d 'Print one JSON object instead of text'
complete -c ancm -n "__fish_ancm_using_subcommand check" -l strip-app-path -d 'Forward requests under --app-path without that base, which goes to the app in X-Forwarded-Prefix instead (for apps that do not know their base)'
complete -c ancm -n "__fish_ancm_using_subcommand check" -l shutdown-message -d 'Send ANCM\'s shutdown message (POST /iisintegration) before the stop signal, as web.config runs always do; -- COMMAND runs get the signal only'
complete -c ancm -n "__fish_ancm_using_subcommand check" -l lazy -d 'Start the app on the first request, as ANCM does, instead of at once'
complete -c ancm -n "__fish_ancm_using_subcommand check" -s h -l help -d 'Print help'
complete -c ancm -n "__fish_ancm_using_subcommand check" -s V -l version -d 'Print version'
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l path -d 'A path to GET through the proxy (repeatable; default /)' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l expect -d 'The status every path must answer with' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l timeout -d 'Fail if the app is not up and every check done within this many seconds' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l process-path -d 'Overrides processPath: the executable to start' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l arguments -d 'Overrides arguments (split the way Windows splits a command line)' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l env -d 'Adds or overrides an environment variable for the app (repeatable)' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l env-file -d 'Adds the variables of FILE (KEY=VALUE lines, systemd\'s EnvironmentFile syntax) to the app\'s environment, over web.config\'s; --env wins over both' -r -F
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l stdout-log -d 'Turns the stdout log on, writing to PREFIX_<yyyyMMddHHmmss>_<pid>.log' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l stdout-log-max-size -d 'With the stdout log on, start a new file once one passes SIZE (bytes, or 512K, 10M, 1G). Off by default, as in ANCM' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l stdout-log-keep -d 'With the stdout log on, delete the oldest of its files beyond N. Off by default' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l startup-time-limit -d 'Overrides startupTimeLimit: seconds the app has to start listening (0-3600)' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l shutdown-time-limit -d 'Overrides shutdownTimeLimit: seconds the app has to stop before it is killed (0-600)' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l rapid-fails-per-minute -d 'Overrides rapidFailsPerMinute: failures in a minute before restarts pause (0-100)' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l request-timeout -d 'Overrides requestTimeout: 90, 90s, 2m, 1h or hh:mm:ss; 0 waits for ever' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l max-request-body -d 'Overrides requestLimits maxAllowedContentLength: the largest request body in bytes (IIS\'s default 30000000); 0 = no limit' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l app-path -d 'The app\'s virtual path, given to it as ASPNETCORE_APPL_PATH (default /)' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l port-env -d 'Also export the app\'s port under NAME, for apps that are not .NET (repeatable)' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l forwarded-for -d 'X-Forwarded-For\'s form: `ip` (1.2.3.4, ::1; the default with -- COMMAND) or `ip:port` (ANCM\'s; the default with web.config)' -r -f -a "ip\t''
ip:port\t''"
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l processes -d 'Overrides processesPerApplication: how many processes serve the app (1-100)' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l launcher-path -d 'What %LAUNCHER_PATH% stands for (Visual Studio sets it for dev-time web.configs); default: the LAUNCHER_PATH environment variable' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l launcher-args -d 'What %LAUNCHER_ARGS% stands for; default: the LAUNCHER_ARGS environment variable' -r
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l strip-app-path -d 'Forward requests under --app-path without that base, which goes to the app in X-Forwarded-Prefix instead (for apps that do not know their base)'
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l shutdown-message -d 'Send ANCM\'s shutdown message (POST /iisintegration) before the stop signal, as web.config runs always do; -- COMMAND runs get the signal only'
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -l lazy -d 'Start the app on the first request, as ANCM does, instead of at once'
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -s h -l help -d 'Print help'
complete -c ancm -n "__fish_ancm_using_subcommand smoke" -s V -l version -d 'Print version'
complete -c ancm -n "__fish_ancm_using_subcommand ls" -s h -l help -d 'Print help'
complete -c ancm -n "__fish_ancm_using_subcommand ls" -s V -l version -d 'Print version'
complete -c ancm -n "__fish_ancm_using_subcommand status" -l json -d 'Print the instance\'s /status JSON instead of text'
complete -c ancm -n "__fish_ancm_using_subcommand status" -s h -l help -d 'Print help'
complete -c ancm -n "__fish_ancm_using_subcommand status" -s V -l version -d 'Print version'
complete -c ancm -n "__fish_ancm_using_subcommand logs" -s n -l lines -d 'How many of the last lines to print first (ancm keeps the last 1000)' -r
complete -c ancm -n "__fish_ancm_using_subcommand logs" -s f -l follow -d 'Keep printing new lines as the app writes them, across restarts, until the instance stops (or Ctrl+C)'
complete -c ancm -n "__fish_ancm_using_subcommand logs" -s h -l help -d 'Print help'
complete -c ancm -n "__fish_ancm_using_subcommand logs" -s V -l version -d 'Print version'
complete -c ancm -n "__fish_ancm_using_subcommand helper" -s h -l help -d 'Print help'
complete -c ancm -n "__fish_ancm_using_subcommand helper" -s V -l version -d 'Print version'
complete -c ancm -n "__fish_ancm_using_subcommand completions" -s h -l help -d 'Print help'
complete -c ancm -n "__fish_ancm_using_subcommand completions" -s V -l version -d 'Print version'
complete -c ancm -n "__fish_ancm_using_subcommand help; and not __fish_seen_subcommand_from run check smoke ls status logs helper completions help" -f -a "run" -d 'Start the app, proxy requests to it and keep it running until Ctrl+C'
complete -c ancm -n "__fish_ancm_using_subcommand help; and not __fish_seen_subcommand_from run check smoke ls status logs helper completions help" -f -a "check" -d 'Validate the app\'s web.config and flags, and print the effective configuration'
complete -c ancm -n "__fish_ancm_using_subcommand help; and not __fish_seen_subcommand_from run check smoke ls status logs helper completions help" -f -a "smoke" -d 'Start the app behind the proxy, request some paths, stop: for CI'
complete -c ancm -n "__fish_ancm_using_subcommand help; and not __fish_seen_subcommand_from run check smoke ls status logs helper completions help" -f -a "ls" -d 'List the ancm instances running on this machine'
complete -c ancm -n "__fish_ancm_using_subcommand help; and not __fish_seen_subcommand_from run check smoke ls status logs helper completions help" -f -a "status" -d 'Show one running ancm instance in detail: its app, listeners and processes'
complete -c ancm -n "__fish_ancm_using_subcommand help; and not __fish_seen_subcommand_from run check smoke ls status logs helper completions help" -f -a "logs" -d 'Print a running instance\'s last lines of app output, and follow it with -f'
complete -c ancm -n "__fish_ancm_using_subcommand help; and not __fish_seen_subcommand_from run check smoke ls status logs helper completions help" -f -a "helper" -d 'Serve a native web-server module over stdin/stdout (docs/helper-protocol.md)'
complete -c ancm -n "__fish_ancm_using_subcommand help; and not __fish_seen_subcommand_from run check smoke ls status logs helper completions help" -f -a "completions" -d 'Print the shell completion script for SHELL'
complete -c ancm -n "__fish_ancm_using_subcommand help; and not __fish_seen_subcommand_from run check smoke ls status logs helper completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
