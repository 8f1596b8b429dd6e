//! [`Coalesce`]: a body wrapper that lets a body's end travel with its last
//! frame.
//!
//! A body read from an HTTP/1.1 connection often does not know it has ended
//! when it yields its last chunk (a chunked response learns it from the
//! `0\r\n\r\n` that follows; hyper's HTTP/1.1 reader hands the chunk over
//! first, on another task). Forwarded as is onto HTTP/2, that is one DATA
//! frame and then an empty DATA frame with END_STREAM: two TLS records, two
//! writes, and a second wake-up of the caller's sidecar, which in turn writes
//! the chunk and the chunked terminator to its app separately. [`Coalesce`]
//! holds each frame until it has seen what follows it — the next frame, or
//! the end — giving the body's other tasks one scheduler turn to produce it.
//! When nothing comes within that turn, the held frame goes out alone, so a
//! slow stream (server-sent events, a gRPC stream) is delayed by one turn,
//! never until its next message.
//!
//! [`Coalesce::prefetched`] also waits (as briefly) for the first frame
//! before the message's head is handed on, so that HTTP/2 sends HEADERS,
//! DATA and END_STREAM of a small message in one write.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// Wraps a body so that its end is known when its last frame is taken.
pub struct Coalesce<B: Body> {
    inner: B,
    /// A frame taken by [`Coalesce::prefetched`], returned first.
    first: Option<Result<Frame<Bytes>, B::Error>>,
    held: Option<Frame<Bytes>>,
    /// An error of the inner body that came while a frame was held: it
    /// goes out after that frame.
    error: Option<B::Error>,
    ended: bool,
    /// Whether this poll already gave the inner body's tasks a turn.
    yielded: bool,
}

// The error slot is never pinned (frames are moved out), so only the inner
// body's own `Unpin` matters.
impl<B: Body + Unpin> Unpin for Coalesce<B> {}

impl<B: Body> std::fmt::Debug for Coalesce<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalesce")
            .field("first", &self.first.is_some())
            .field("held", &self.held.is_some())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// How many scheduler turns [`Coalesce::prefetched`] gives the body: one for
/// its first frame to arrive, one for what follows it.
const PREFETCH_TURNS: u8 = 2;

impl<B> Coalesce<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            first: None,
            held: None,
            error: None,
            ended: false,
            yielded: false,
        }
    }

    /// Wraps `inner` and takes its first frame if it arrives within a
    /// scheduler turn or two, so that it is ready the moment the message's
    /// head is sent.
    pub async fn prefetched(inner: B) -> Self {
        let mut me = Self::new(inner);
        if me.is_end_stream() {
            return me;
        }
        let mut turns = 0;
        let first = std::future::poll_fn(|cx| match Pin::new(&mut me).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame),
            Poll::Pending if turns < PREFETCH_TURNS => {
                turns += 1;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        me.first = first;
        me
    }
}

impl<B> Body for Coalesce<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let me = &mut *self;
        if let Some(first) = me.first.take() {
            return Poll::Ready(Some(first));
        }
        if me.held.is_none()
            && let Some(e) = me.error.take()
        {
            return Poll::Ready(Some(Err(e)));
        }
        loop {
            if me.ended || (me.held.is_none() && me.inner.is_end_stream()) {
                me.ended = true;
                return Poll::Ready(me.held.take().map(Ok));
            }
            match Pin::new(&mut me.inner).poll_frame(cx) {
                Poll::Ready(None) => me.ended = true,
                Poll::Ready(Some(Err(e))) => match me.held.take() {
                    Some(held) => {
                        me.error = Some(e);
                        return Poll::Ready(Some(Ok(held)));
                    }
                    None => return Poll::Ready(Some(Err(e))),
                },
                Poll::Ready(Some(Ok(frame))) => {
                    me.yielded = false;
                    if let Some(prev) = me.held.replace(frame) {
                        return Poll::Ready(Some(Ok(prev)));
                    }
                    if me.inner.is_end_stream() {
                        me.ended = true;
                    }
                }
                Poll::Pending if me.held.is_none() => return Poll::Pending,
                Poll::Pending if !me.yielded => {
                    // One turn for the task that feeds the inner body: it was
                    // woken by this poll and runs before this task again.
                    me.yielded = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => {
                    me.yielded = false;
                    return Poll::Ready(me.held.take().map(Ok));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.held.is_none() && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let len =
            |f: Option<&Frame<Bytes>>| f.and_then(Frame::data_ref).map_or(0, |d| d.len() as u64);
        let first = len(self.first.as_ref().and_then(|r| r.as_ref().ok()));
        let held = len(self.held.as_ref()) + first;
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + held);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use http::HeaderMap;
    use http_body_util::{BodyExt, StreamBody};
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::ReceiverStream;

    use super::*;

    type Item = Result<Frame<Bytes>, Infallible>;

    fn channel_body(
        capacity: usize,
    ) -> (
        mpsc::Sender<Item>,
        Coalesce<StreamBody<ReceiverStream<Item>>>,
    ) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, Coalesce::new(StreamBody::new(ReceiverStream::new(rx))))
    }

    fn data(s: &'static str) -> Item {
        Ok(Frame::data(Bytes::from_static(s.as_bytes())))
    }

    #[tokio::test]
    async fn the_last_frame_comes_with_the_end_when_the_end_follows_within_a_turn() {
        // As hyper's HTTP/1.1 reader does: it hands over the chunk, and finds
        // the end only when the receiver asks for more (here: frees the slot).
        let (tx, mut body) = channel_body(1);
        let feeder = tokio::spawn(async move {
            tx.send(data("chunk")).await.unwrap();
            let permit = tx.reserve().await.unwrap();
            drop(permit);
        });
        let f = body.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "chunk");
        assert!(
            body.is_end_stream(),
            "the end was not known with the last frame"
        );
        assert!(body.frame().await.is_none());
        feeder.await.unwrap();
    }

    #[tokio::test]
    async fn frames_keep_their_order_and_trailers_pass() {
        let (tx, mut body) = channel_body(4);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        for f in [data("a"), data("b"), Ok(Frame::trailers(trailers))] {
            tx.send(f).await.unwrap();
        }
        drop(tx);
        let mut seen = Vec::new();
        while let Some(f) = body.frame().await {
            let f = f.unwrap();
            seen.push(match f.into_data() {
                Ok(d) => String::from_utf8(d.to_vec()).unwrap(),
                Err(f) => format!(
                    "trailers {}",
                    f.into_trailers().unwrap()["grpc-status"].to_str().unwrap()
                ),
            });
        }
        assert_eq!(seen, ["a", "b", "trailers 0"]);
    }

    #[tokio::test]
    async fn a_held_frame_goes_out_before_the_error_that_followed_it() {
        let frames: Vec<Result<Frame<Bytes>, &'static str>> = vec![
            Ok(Frame::data(Bytes::from_static(b"last good chunk"))),
            Err("app reset"),
        ];
        let mut body = Coalesce::new(StreamBody::new(futures::stream::iter(frames)));
        let f = body.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "last good chunk");
        assert!(!body.is_end_stream(), "an error is still to come");
        assert_eq!(body.frame().await.unwrap().unwrap_err(), "app reset");
    }

    #[tokio::test]
    async fn prefetched_has_the_first_frame_and_the_end_ready_when_the_head_goes() {
        let (tx, rx) = mpsc::channel::<Item>(1);
        let feeder = tokio::spawn(async move {
            tx.send(data("whole body")).await.unwrap();
            drop(tx.reserve().await.unwrap());
        });
        let body = Coalesce::prefetched(StreamBody::new(ReceiverStream::new(rx))).await;
        assert!(body.first.is_some(), "the first frame was not prefetched");
        assert!(body.ended, "the end was not seen with the first frame");
        assert_eq!(body.size_hint().lower(), 10);
        let mut body = body;
        let f = body.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "whole body");
        assert!(body.is_end_stream());
        feeder.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn prefetched_gives_up_on_a_body_that_is_not_there_yet() {
        let (tx, rx) = mpsc::channel::<Item>(1);
        let body = tokio::time::timeout(
            Duration::from_millis(1),
            Coalesce::prefetched(StreamBody::new(ReceiverStream::new(rx))),
        )
        .await
        .expect("prefetched waited for a body that was not there");
        assert!(body.first.is_none() && !body.is_end_stream());
        let mut body = body;
        tx.send(data("late")).await.unwrap();
        drop(tx);
        let f = body.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "late");
        assert!(body.frame().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_stream_is_not_held_until_its_next_message() {
        let (tx, mut body) = channel_body(4);
        tx.send(data("event 1")).await.unwrap();
        let first = tokio::time::timeout(Duration::from_millis(1), body.frame()).await;
        let f = first
            .expect("the first event was held back")
            .unwrap()
            .unwrap();
        assert_eq!(f.into_data().unwrap(), "event 1");
        assert!(!body.is_end_stream());
        tokio::time::sleep(Duration::from_secs(5)).await;
        tx.send(data("event 2")).await.unwrap();
        drop(tx);
        let f = body.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "event 2");
        assert!(body.is_end_stream());
    }
}
