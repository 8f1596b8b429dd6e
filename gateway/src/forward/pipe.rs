//! Reading a route frame off a stream.

use std::time::Duration;

use meshgw_proxy::route::RouteError;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a route frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bytes are not a valid frame.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The stream failed or ended early.
    #[error("stream ended before the route header was complete: {0}")]
    Io(#[from] std::io::Error),
    /// Nothing complete arrived in time.
    #[error("no complete route header within {0:?}")]
    Timeout(Duration),
}

/// A route frame decoder: [`route::decode_header`](meshgw_proxy::route::decode_header) or `decode_answer`.
pub type Decode<T> = fn(&[u8]) -> Result<Option<(T, usize)>, RouteError>;

/// Reads one frame with `decode` from `io`, byte-exact (nothing after the frame is consumed).
pub async fn read_frame<T, R>(
    io: &mut R,
    decode: Decode<T>,
    timeout: Duration,
) -> Result<T, ReadError>
where
    R: AsyncRead + Unpin,
{
    let read = async {
        // Header first (6 bytes), then exactly the body it announces.
        let mut buf = vec![0u8; 6];
        io.read_exact(&mut buf).await?;
        if let Some((v, _)) = decode(&buf)? {
            return Ok(v);
        }
        let len = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
        buf.resize(6 + len, 0);
        io.read_exact(&mut buf[6..]).await?;
        match decode(&buf)? {
            Some((v, _)) => Ok(v),
            None => Err(ReadError::Route(RouteError::Malformed(
                "incomplete frame".into(),
            ))),
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ReadError::Timeout(timeout))?
}
