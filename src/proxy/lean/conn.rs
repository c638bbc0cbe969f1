//! One lean client connection: the loop that reads request heads from the client, under the
//! idle and header read timeouts, and hands each whole one to `request.rs`; and the connection
//! as handed to hyper ([`Prefixed`]) at the first request the lean path does not take.
//!
//! Must not import hyper's path (`hyper_path/`) nor `front.rs`, which calls this.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::super::forward::Addrs;
use super::super::{ClientInfo, Proxy};
use super::deadline::Deadline;
use super::parse;
use super::request::{Next, Split};

/// How a lean connection ended.
pub(in crate::proxy) enum Ended {
    Closed,
    /// A request the lean path does not take: the connection is hyper's, with these bytes
    /// read from it first.
    Hyper(TcpStream, BytesMut),
}

/// A client connection on the lean path.
struct Lean<'p> {
    proxy: &'p Proxy,
    client: &'p ClientInfo,
    addrs: Addrs,
    shutdown: &'p CancellationToken,
    stream: TcpStream,
    /// Bytes from the client not yet taken.
    buf: BytesMut,
    /// Bytes for the client not yet written.
    out: Vec<u8>,
    deadline: Deadline,
    /// When the last request ended: the idle timeout counts from there.
    ended: std::time::Instant,
}

/// Serves the client on `stream` until it closes, ancm stops, or a request goes to hyper.
/// `first` is when the first request's head must have come by.
/// `addrs` are the client's address and the one it connected to, for the access log.
pub(in crate::proxy) async fn serve(
    stream: TcpStream,
    client: &ClientInfo,
    addrs: Addrs,
    proxy: &Proxy,
    shutdown: &CancellationToken,
    first: Instant,
) -> Ended {
    let mut lean = Lean {
        proxy,
        client,
        addrs,
        shutdown,
        stream,
        buf: BytesMut::new(),
        out: Vec::new(),
        deadline: Deadline::new(first),
        ended: std::time::Instant::now(),
    };
    let mut head_due = first;
    loop {
        match lean.request(head_due).await {
            Next::KeepAlive => head_due = Instant::from_std(lean.ended) + proxy.idle_timeout,
            Next::Close => {
                let _ = lean.stream.shutdown().await;
                return Ended::Closed;
            }
            Next::Hyper => {
                tracing::trace!(read = lean.buf.len(), "the connection goes to hyper");
                return Ended::Hyper(lean.stream, lean.buf);
            }
        }
    }
}

impl Lean<'_> {
    /// Reads from the client until a head is whole (or will not be), then forwards it.
    /// `idle_due` is when the connection closes if no request has begun.
    async fn request(&mut self, idle_due: Instant) -> Next {
        let mut head_due = None;
        loop {
            if self.buf.is_empty() {
                self.deadline.set(idle_due);
            } else {
                let mut slots = parse::slots();
                match parse::parse(&self.buf, &mut slots, self.proxy.max_request_head) {
                    parse::Verdict::Partial => {
                        // As on hyper's path, a head begun just before the idle timeout does
                        // not keep the connection past it.
                        let due = *head_due
                            .get_or_insert_with(|| Instant::now() + self.proxy.header_read_timeout);
                        self.deadline.set(due.min(idle_due));
                    }
                    parse::Verdict::Hyper(why) => {
                        tracing::trace!(why, "a request for hyper's path");
                        return Next::Hyper;
                    }
                    parse::Verdict::Request(request) => {
                        let split = Split {
                            proxy: self.proxy,
                            client: self.client,
                            addrs: self.addrs,
                            shutdown: self.shutdown,
                            stream: &mut self.stream,
                            out: &mut self.out,
                            deadline: &mut self.deadline,
                            ended: &mut self.ended,
                        };
                        let (next, taken) = split.forward(&request).await;
                        if taken > 0 {
                            self.buf.advance(taken);
                        }
                        return next;
                    }
                }
            }
            if self.buf.len() >= self.proxy.max_request_head {
                return Next::Hyper;
            }
            self.buf.reserve(4096);
            let idle = self.buf.is_empty();
            let read = tokio::select! {
                biased;
                read = tokio::io::AsyncReadExt::read_buf(&mut self.stream, &mut self.buf) => read,
                () = self.deadline.passed() => {
                    tracing::debug!(idle, "no request within the idle or header read timeout; closing");
                    return Next::Close;
                }
                () = self.shutdown.cancelled(), if idle => return Next::Close,
            };
            match read {
                Ok(0) => return Next::Close,
                Ok(_) => {}
                Err(err) => {
                    tracing::debug!(%err, "client connection ended with an error");
                    return Next::Close;
                }
            }
        }
    }
}

/// A connection handed to hyper: what the lean path read from it comes first.
pub(in crate::proxy) struct Prefixed {
    prefix: BytesMut,
    stream: TcpStream,
}

impl Prefixed {
    pub(in crate::proxy) fn new(stream: TcpStream, prefix: BytesMut) -> Prefixed {
        Prefixed { prefix, stream }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
