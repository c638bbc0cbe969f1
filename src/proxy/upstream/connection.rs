//! An open HTTP/1.1 connection to an app process: its socket, the bytes read from it, the head
//! buffer kept between requests, the peek that tells a quiet idle connection from one the app
//! closed or wrote into, and what the end of one exchange says of its reuse.

use std::io;
use std::task::{ready, Context, Poll};

use bytes::{BufMut, BytesMut};
use tokio::net::TcpStream;

/// The most read from the app at once: what one piece of body handed to the front holds.
const READ_PIECE: usize = 8 * 1024;

/// An open HTTP/1.1 connection to the app, between requests or lent to one.
pub(in crate::proxy) struct Connection {
    pub(in crate::proxy) stream: TcpStream,
    /// Bytes read from the app and not yet taken; empty between requests.
    pub(in crate::proxy) buf: BytesMut,
    /// The request head being written; kept to be reused by the next request.
    pub(in crate::proxy) head: Vec<u8>,
}

impl Connection {
    pub(in crate::proxy) fn new(stream: TcpStream) -> Connection {
        Connection {
            stream,
            buf: BytesMut::new(),
            head: Vec::new(),
        }
    }

    /// Whether the connection is open with nothing to read, as far as the kernel knows now: a
    /// request written into one the app closed would fail with no way to tell it from one that
    /// crashed the app, and bytes the app sent unasked would be taken for the next answer. A
    /// peek that takes nothing.
    #[cfg(unix)]
    pub(in crate::proxy) fn quiet(&self) -> bool {
        use nix::sys::socket::{recv, MsgFlags};
        use std::os::fd::AsRawFd;
        let mut byte = [0u8; 1];
        // Nothing to read: open and quiet, as an idle connection is. Anything else (end of
        // stream, bytes the app sent unasked, an error) is not one to send on.
        matches!(
            recv(
                self.stream.as_raw_fd(),
                &mut byte,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
            ),
            Err(nix::errno::Errno::EAGAIN)
        )
    }

    /// As on Unix, through tokio's peek, which sees what its reactor has been told so far.
    #[cfg(not(unix))]
    pub(in crate::proxy) fn quiet(&self) -> bool {
        let mut byte = [0u8; 1];
        let mut peek = tokio::io::ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        matches!(self.stream.poll_peek(&mut cx, &mut peek), Poll::Pending)
    }

    /// Reads at most [`READ_PIECE`] more bytes into the buffer; `Ok(0)` at the end of stream.
    pub(in crate::proxy) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            self.buf.reserve(READ_PIECE);
            match self
                .stream
                .try_read_buf(&mut (&mut self.buf).limit(READ_PIECE))
            {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                read => return Poll::Ready(read),
            }
        }
    }
}

/// What the end of one exchange says of its connection, as either path saw it.
#[derive(Clone, Copy)]
pub(in crate::proxy) struct Outcome {
    /// The app's head allows another request (no `Connection: close`, not HTTP/1.0 without
    /// keep-alive), and its body did not run until the app closed.
    pub(in crate::proxy) keep_alive: bool,
    /// The whole request body had gone to the app before its response head came back.
    pub(in crate::proxy) body_sent_first: bool,
    /// The response's framing was ambiguous (Transfer-Encoding and Content-Length both): it
    /// was read one way, and the app may have meant the other.
    pub(in crate::proxy) framing_anomaly: bool,
    /// Bytes came after the response's end and were read with it.
    pub(in crate::proxy) leftover: bool,
}

/// Whether a connection may serve another request once its response has been read in full:
/// the one rule both paths follow. An app that answered before taking the whole body may
/// never read the rest, which it would then take for the start of the next request; after
/// ambiguous framing or stray bytes, where the next response starts is unknown. Such a
/// connection is closed: the next request opens another, which costs a connect, where a
/// reuse could hand one client another's answer.
#[inline]
pub(in crate::proxy) fn reusable(outcome: Outcome) -> bool {
    outcome.keep_alive && outcome.body_sent_first && !outcome.framing_anomaly && !outcome.leftover
}
