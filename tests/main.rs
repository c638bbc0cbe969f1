//! Integration tests: the real `ancm` binary against the real sample app (examples/sampleapp),
//! on loopback port 0. One test binary; one module per concern. Unix only: the tests send
//! signals and read /proc.

#![cfg(unix)]

mod support;

/// The admin listener: health, readiness, status and Prometheus metrics.
mod admin;
/// `ancm check`, and the settings it reports acting on `ancm run`.
mod check;
/// The command line itself: completions and help.
mod cli;
/// web.config and flags as the user writes them, and their errors.
mod config;
/// The ANCM contract as real apps hold it: framing, failed exchanges, shutdown, limits.
mod contract;
/// Every real-world web.config in tests/fixtures/webconfig gets the verdict ANCM would give.
mod corpus;
/// What a client or an app frames wrong or ambiguously: request trailers, Host, request
/// targets and methods no app can mean, bodies framed two ways or broken part way.
mod framing;
/// Warm-up before traffic, liveness probes, the app-pool limits on memory and age, --user.
mod health;
/// `ancm helper`, the protocol for native web-server modules.
mod helper;
/// A real published Kestrel app behind ancm (needs ANCM_KESTREL_DIR; CI sets it).
mod kestrel;
/// The lean HTTP/1.1 path: what it takes, and a connection handed to hyper mid-way.
mod lean;
/// app_offline.htm, recycles without downtime, several processes, lazy start, backoff.
mod lifecycle;
/// The stdout log file and the console.
mod logs;
/// Logs for machines: `--log-format json` and the W3C access log.
mod machine_logs;
/// The reference native-module client in C, against `ancm helper`.
mod native_module;
/// ancm as a container's PID 1, in a PID namespace of its own.
mod pid1;
/// Apps that are not ASP.NET Core (`-- COMMAND`): a stop signal without the shutdown message,
/// the client's bare IP in X-Forwarded-For.
mod plain_apps;
/// App connections kept between requests: one an app left bytes on, framed ambiguously or
/// answered before taking the request body is not reused, so no client gets another's answer.
mod pooled;
/// WebSockets, HTTP/2 (h2c and TLS), requests aborted by the client, server-sent events.
mod protocols;
/// The header contract, streaming, timeouts and the proxy's own pages.
mod proxy;
/// Bad days: crashes and kills under load, slow and hostile clients, full disks.
mod reliability;
/// `--user`: the files ancm opens for the app are opened as the app's user; what the app does
/// not inherit from ancm.
mod run_as;
/// Graceful stop and no process left behind, also when ancm is killed.
mod shutdown;
/// `ancm smoke`, for CI.
mod smoke;
/// Clients that stop reading (the send timeout), and WebSockets left idle.
mod stalled_clients;
/// Starting, waiting, restarting, the rapid-fail limit, failed starts.
mod supervision;
/// systemd's service protocol: notifications, the watchdog, socket activation.
mod systemd;
/// HTTPS on the front: client certificates for the app, and the HTTPS port it redirects to.
mod tls;
/// The Windows build under Wine (needs ANCM_WINE_EXE; scripts/windows-ci sets it).
mod wine;
