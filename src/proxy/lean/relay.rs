//! The lean path's relay of a response body from the app to the client: by its length, its
//! chunks or until the app closes, re-framed for the client, gathered into few writes, with
//! requestTimeout bounding each wait on the app and the send timeout each write to the client.
//!
//! Must not import hyper's path (`hyper_path/`, `front.rs`).

use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, BufMut};
use tokio::io::{AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::super::h1::{self, ExchangeError, Step};
use super::super::outcome::Broke;
use super::super::send_timeout::{self, Stalls};
use super::super::upstream::connection::Connection;
use super::deadline::Deadline;
use super::response::Framing;

/// Response bytes gathered before they are written to the client.
const FLUSH_AT: usize = 16 * 1024;

/// The client's side of a lean connection, for one response body.
pub(super) struct Relay<'a> {
    pub(super) stream: &'a mut TcpStream,
    /// Bytes for the client not yet written.
    pub(super) out: &'a mut Vec<u8>,
    pub(super) deadline: &'a mut Deadline,
    /// --send-timeout.
    pub(super) send_timeout: Option<Duration>,
}

impl Relay<'_> {
    /// Passes the response body on, framed for the client.
    pub(super) async fn body(
        &mut self,
        conn: &mut Connection,
        framing: Framing,
        limit: Option<Duration>,
    ) -> Result<Sent, Broke> {
        let mut sent = 0;
        let mut reusable = true;
        match framing {
            Framing::Done => {}
            Framing::Length(mut left) => loop {
                let take = usize::try_from(left).map_or(conn.buf.len(), |l| l.min(conn.buf.len()));
                if take > 0 {
                    if self.out.len() + take <= FLUSH_AT {
                        self.out.extend_from_slice(&conn.buf[..take]);
                    } else {
                        flush(self.stream, self.out, self.send_timeout).await?;
                        send(self.stream, &conn.buf[..take], self.send_timeout).await?;
                    }
                    conn.buf.advance(take);
                    sent += take;
                    left -= take as u64;
                }
                if left == 0 {
                    break;
                }
                flush(self.stream, self.out, self.send_timeout).await?;
                self.fill(conn, limit).await?;
            },
            Framing::Chunked(mut state) => loop {
                match h1::chunk_step(&mut state, &mut conn.buf).map_err(Broke::App)? {
                    Step::Data(data) => {
                        sent += data.len();
                        h1::push_chunk(self.out, &data);
                        if self.out.len() >= FLUSH_AT {
                            flush(self.stream, self.out, self.send_timeout).await?;
                        }
                    }
                    // Trailers go to a client that asked for them (TE), and such requests go
                    // hyper's way.
                    Step::Trailers(_) | Step::End => {
                        self.out.extend_from_slice(b"0\r\n\r\n");
                        break;
                    }
                    Step::More => {
                        flush(self.stream, self.out, self.send_timeout).await?;
                        self.fill(conn, limit).await?;
                    }
                }
            },
            Framing::Close => loop {
                if !conn.buf.is_empty() {
                    sent += conn.buf.len();
                    h1::push_chunk(self.out, &conn.buf);
                    conn.buf.clear();
                }
                flush(self.stream, self.out, self.send_timeout).await?;
                match self.fill(conn, limit).await {
                    Ok(()) => {}
                    Err(Broke::App(ExchangeError::ClosedEarly)) => {
                        self.out.extend_from_slice(b"0\r\n\r\n");
                        reusable = false;
                        break;
                    }
                    Err(err) => return Err(err),
                }
            },
        }
        flush(self.stream, self.out, self.send_timeout).await?;
        Ok(Sent {
            bytes: sent,
            reusable,
        })
    }

    /// Reads more of the response body; requestTimeout bounds each wait on the app.
    async fn fill(&mut self, conn: &mut Connection, limit: Option<Duration>) -> Result<(), Broke> {
        if let Some(limit) = limit {
            self.deadline.set(Instant::now() + limit);
        }
        match wait_app(conn, self.stream, self.deadline).await {
            Ok(0) => Err(Broke::App(ExchangeError::ClosedEarly)),
            Ok(_) => {
                gather(conn);
                Ok(())
            }
            Err(Broke::TimedOut) => Err(Broke::App(ExchangeError::Invalid(
                "no body data within requestTimeout",
            ))),
            Err(broke) => Err(broke),
        }
    }
}

/// What the body loop takes from the app at once, reading what is already there: a long body
/// goes on in pieces this large (fewer system calls each way), and a client that stops reading
/// holds at most this much here.
const GATHER: usize = 32 * 1024;

/// Reads, without waiting, what the app has already sent, up to [`GATHER`] in the buffer.
/// An end of stream or error is left for the next wait to find.
fn gather(conn: &mut Connection) {
    while conn.buf.len() < GATHER {
        let room = GATHER - conn.buf.len();
        conn.buf.reserve(room);
        match conn.stream.try_read_buf(&mut (&mut conn.buf).limit(room)) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}

/// A response body passed on in full.
pub(super) struct Sent {
    pub(super) bytes: usize,
    /// The body did not end with the app closing the connection.
    pub(super) reusable: bool,
}

/// Waits for the app to send more (how much; none when it closed), for the deadline, or for the
/// client to go away (which aborts the request: the app sees its connection close). Bytes the
/// client sends meanwhile (a pipelined request) are left in the socket.
pub(super) async fn wait_app(
    conn: &mut Connection,
    client: &TcpStream,
    deadline: &mut Deadline,
) -> Result<usize, Broke> {
    let mut watching = true;
    loop {
        tokio::select! {
            biased;
            read = std::future::poll_fn(|cx| conn.poll_fill(cx)) => {
                return read.map_err(|err| Broke::App(ExchangeError::Read(err)));
            }
            () = deadline.passed() => return Err(Broke::TimedOut),
            ready = client.readable(), if watching => {
                if ready.is_err() || client_gone(client) {
                    return Err(Broke::Client);
                }
                // A pipelined request: the client is there; stop watching for this wait.
                watching = false;
            }
        }
    }
}

/// Whether the client closed or reset its connection: a peek that takes nothing.
fn client_gone(client: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    let mut peek = ReadBuf::new(&mut byte);
    match client.poll_peek(&mut Context::from_waker(Waker::noop()), &mut peek) {
        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => true,
        Poll::Ready(Ok(_)) | Poll::Pending => false,
    }
}

/// Writes `out` to the client, and empties it.
pub(super) async fn flush(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    send_timeout: Option<Duration>,
) -> Result<(), Broke> {
    if out.is_empty() {
        return Ok(());
    }
    let written = send(stream, out, send_timeout).await;
    out.clear();
    written
}

/// Writes `bytes` to the client; a write that makes no progress for the send timeout fails.
async fn send(
    stream: &mut TcpStream,
    bytes: &[u8],
    send_timeout: Option<Duration>,
) -> Result<(), Broke> {
    let mut stream = Stalls::new(stream, send_timeout);
    stream.write_all(bytes).await.map_err(|err| {
        send_timeout::report(&err, None);
        Broke::Client
    })
}
