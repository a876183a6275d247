//! Differential fuzzing of the direct upstream client's response reading against hyper's
//! client: the same upstream bytes go to `head::parse_response_head` + `decode::Decoder` (the
//! direct client's parser and de-framer, without the socket) and to hyper's HTTP/1.1 client
//! connection (over an in-memory pipe, the upstream closing after the bytes).
//!
//! Input: `method byte (even GET, odd HEAD) | the upstream's bytes`.
//!
//! Invariants: no panic; whatever the direct client reads as a complete response (interim
//! 1xx skipped), hyper reads as a complete response too, with the same status, the same header
//! fields in the same order and the same body bytes. The direct client may refuse more than
//! hyper (it is stricter on purpose), never accept something hyper refuses or read other
//! fields or another body from the same bytes. One difference is by design: with both
//! `Transfer-Encoding` and `Content-Length`, the direct client drops the length (RFC 9112
//! §6.3), where hyper keeps it; the comparison leaves that field out then. And when every
//! `Connection` field is a lone `keep-alive` or `close` (naming no other field), they are
//! hop-by-hop and read for the framing only: the direct client leaves them out of the map, and
//! so does the comparison.

#![no_main]

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;
use token_handler::proxy::direct::decode::{Decoder, Step};
use token_handler::proxy::direct::head::parse_response_head;
use token_handler::proxy::headers::names_no_header;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, PartialEq, Eq)]
enum Read {
    Complete {
        status: u16,
        fields: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    },
    Refused,
}

/// The header fields in order, as compared (see the invariants).
fn fields(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    let framed_twice = headers.contains_key(TRANSFER_ENCODING);
    let connection_plain = headers
        .get_all(CONNECTION)
        .iter()
        .all(|value| names_no_header(value.as_bytes().trim_ascii()));
    headers
        .iter()
        .filter(|(name, _)| !(framed_twice && *name == CONTENT_LENGTH))
        .filter(|(name, _)| !(connection_plain && *name == CONNECTION))
        .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
        .collect()
}

fn direct(input: &[u8], method: &Method) -> Read {
    let mut read = BytesMut::from(input);
    let head = loop {
        match parse_response_head(&mut read, method) {
            Ok(Some(head))
                if head.status.is_informational()
                    && head.status != StatusCode::SWITCHING_PROTOCOLS => {}
            Ok(Some(head)) => break head,
            // An incomplete head at the close, or a refused one.
            Ok(None) | Err(_) => return Read::Refused,
        }
    };
    if head.status == StatusCode::SWITCHING_PROTOCOLS {
        return Read::Refused;
    }
    let mut decoder = Decoder::new(head.framing);
    let mut body = Vec::new();
    loop {
        let step = match decoder.step(&mut read) {
            Step::More => decoder.at_close(),
            step => step,
        };
        match step {
            Step::Data(data) => body.extend_from_slice(&data),
            Step::End => {
                return Read::Complete {
                    status: head.status.as_u16(),
                    fields: fields(&head.headers),
                    body,
                }
            }
            Step::Fail(_) | Step::More => return Read::Refused,
        }
    }
}

fn hyper(input: &[u8], method: &Method) -> Read {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (client_side, mut upstream) = tokio::io::duplex(1 << 20);
        let Ok((mut sender, connection)) = hyper::client::conn::http1::Builder::new()
            .handshake::<_, Empty<Bytes>>(TokioIo::new(client_side))
            .await
        else {
            return Read::Refused;
        };
        tokio::spawn(connection);
        let input = input.to_vec();
        // The upstream answers once the request head is in, then closes.
        tokio::spawn(async move {
            let mut got = Vec::new();
            let mut chunk = [0u8; 1024];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match upstream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = upstream.write_all(&input).await;
            let _ = upstream.shutdown().await;
            // Keep the pipe open for reading until hyper is done with it.
            let _ = upstream.read_to_end(&mut got).await;
        });
        let request = Request::builder()
            .method(method.clone())
            .uri("/")
            .header("host", "upstream")
            .body(Empty::new())
            .expect("request");
        let Ok(response) = sender.send_request(request).await else {
            return Read::Refused;
        };
        let status = response.status().as_u16();
        let fields = fields(response.headers());
        match response.into_body().collect().await {
            Ok(collected) => Read::Complete {
                status,
                fields,
                body: collected.to_bytes().to_vec(),
            },
            Err(_) => Read::Refused,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let method = if selector % 2 == 0 {
        Method::GET
    } else {
        Method::HEAD
    };
    let ours = direct(input, &method);
    if let Read::Complete { .. } = ours {
        let theirs = hyper(input, &method);
        assert_eq!(
            ours,
            theirs,
            "the direct client read {:?}",
            String::from_utf8_lossy(input)
        );
    }
});
