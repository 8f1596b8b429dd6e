//! WebSocket: an echo app behind a sidecar, and a client that speaks
//! through a sidecar's `outbound.http` (tokio-tungstenite on both ends).

use std::net::SocketAddr;

use anyhow::{Result, bail};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Error, Message};

use crate::apps::App;

/// Starts a WebSocket echo app on HTTP/1.1. `GET /echo` asking for a
/// WebSocket is answered `101`; the first message it sends is the
/// `x-meshgw-*` headers of the handshake (`k=v` lines), then every message
/// comes back as it was sent, until the client closes. A WebSocket request
/// for another path gets `404`; a plain request `200 name=<name>` (the
/// sidecar's health check).
pub async fn echo_app(name: &str) -> Result<App> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    let name = name.to_string();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let name = name.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(req, name.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Ok(App { addr, task })
}

async fn handle(
    mut req: Request<Incoming>,
    name: String,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let key = req.headers().get("sec-websocket-key").cloned();
    let wants_ws = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let Some(key) = key.filter(|_| wants_ws) else {
        return Ok(Response::new(Full::new(Bytes::from(format!(
            "name={name}\n"
        )))));
    };
    if req.uri().path() != "/echo" {
        let mut resp = Response::new(Full::new(Bytes::from("no websocket here\n")));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return Ok(resp);
    }
    let seen: String = req
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("x-meshgw-"))
        .map(|(k, v)| format!("{k}={}\n", v.to_str().unwrap_or("?")))
        .collect();
    let on = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(io) = on.await else { return };
        let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
        if ws.send(Message::text(seen)).await.is_err() {
            return;
        }
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                // The reply to a close is queued; flushing sends it.
                let _ = ws.flush().await;
                return;
            }
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                return;
            }
        }
    });
    let resp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .header("x-app", "ws-echo")
        .body(Full::new(Bytes::new()))
        .expect("a valid response");
    Ok(resp)
}

/// A WebSocket client connected through a sidecar's `outbound.http`.
pub type Client = WebSocketStream<TcpStream>;

/// Opens `ws://<host><path>` through the sidecar listening on `outbound`;
/// returns the client and the handshake's response (its headers).
/// A refused handshake is `Err(Error::Http(response))`.
pub async fn connect(
    outbound: SocketAddr,
    host: &str,
    path: &str,
) -> Result<(Client, Response<Option<Vec<u8>>>), Error> {
    let tcp = TcpStream::connect(outbound).await?;
    tokio_tungstenite::client_async(format!("ws://{host}{path}"), tcp).await
}

/// Sends `msg` and returns the next data message that comes back.
pub async fn round_trip(ws: &mut Client, msg: Message) -> Result<Message> {
    ws.send(msg).await?;
    next_data(ws).await
}

/// Returns the next text or binary message.
pub async fn next_data(ws: &mut Client) -> Result<Message> {
    loop {
        match ws.next().await {
            Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => return Ok(m),
            Some(Ok(Message::Close(f))) => bail!("closed by the other side: {f:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("WebSocket error: {e}"),
            None => bail!("the connection ended"),
        }
    }
}
