//! URLs fetched from a tiny HTTP server on 127.0.0.1 that the test starts: content types,
//! charsets from headers, redirects, status errors, the size cap and the timeout.

use std::time::Duration;

use futures::StreamExt;
use rwkv_sources::{DocKind, Input, Options, Sources};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::util::fixture;

async fn respond(mut sock: tokio::net::TcpStream) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&req).lines().next().unwrap_or("").to_string();
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let ok = |ct: &str, body: Vec<u8>| (format!("200 OK\r\nContent-Type: {ct}"), body);
    let (head, body) = match path.as_str() {
        "/article" => ok(
            "text/html; charset=utf-8",
            std::fs::read(fixture("web/article.html")).unwrap(),
        ),
        // The header's charset wins over the page's own (here: none) and the bytes' guess.
        "/latin" => {
            let html = "<html><head><title>Cr\u{e8}me</title></head><body><article><p>Le caf\u{e9} cr\u{e8}me est tr\u{e8}s bon, vraiment tr\u{e8}s bon, et on en boit beaucoup ici.</p></article></body></html>";
            let bytes: Vec<u8> = html.chars().map(|c| c as u32 as u8).collect();
            ok("text/html; charset=iso-8859-1", bytes)
        }
        "/redirect" => ("302 Found\r\nLocation: /article".to_string(), Vec::new()),
        "/loop" => ("302 Found\r\nLocation: /loop".to_string(), Vec::new()),
        "/missing" => (
            "404 Not Found\r\nContent-Type: text/plain".to_string(),
            b"nope".to_vec(),
        ),
        "/book.txt" => ok(
            "text/plain; charset=utf-8",
            std::fs::read(fixture("books/lighthouse.txt")).unwrap(),
        ),
        "/tides.pdf" => ok("application/pdf", std::fs::read(fixture("books/tides.pdf")).unwrap()),
        "/image" => ok("image/png", std::fs::read(fixture("code/logo.png")).unwrap()),
        "/big" => {
            // No Content-Length: the cap must stop the streamed body.
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n")
                .await;
            let chunk = vec![b'a'; 64 << 10];
            for _ in 0..64 {
                if sock.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            return;
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            ok("text/html", b"<p>too late</p>".to_vec())
        }
        _ => ("404 Not Found".to_string(), Vec::new()),
    };
    let msg = format!(
        "HTTP/1.1 {head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = sock.write_all(msg.as_bytes()).await;
    let _ = sock.write_all(&body).await;
    let _ = sock.shutdown().await;
}

#[test]
fn fetches_urls_from_a_local_server() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(respond(sock));
            }
        });
        let urls = [
            "/article",
            "/latin",
            "/redirect",
            "/loop",
            "/missing",
            "/book.txt",
            "/tides.pdf",
            "/image",
            "/big",
            "/slow",
        ];
        let opts = Options {
            max_document_size: 1 << 20,
            fetch_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            max_redirects: 3,
            ..Options::default()
        };
        let sources = Sources::new(opts)
            .unwrap()
            .inputs(urls.iter().map(|u| Input::Url(format!("{base}{u}"))));
        let items = tokio::time::timeout(Duration::from_secs(60), sources.stream().collect::<Vec<_>>())
            .await
            .expect("finished in time");
        server.abort();
        let s: Vec<String> = items
            .iter()
            .map(|i| match i {
                Ok(d) => format!(
                    "{} {}",
                    d.kind.as_str(),
                    d.url.as_deref().unwrap_or("").trim_start_matches(&base)
                ),
                Err(e) => format!("{} {}", e.reason(), e.at().trim_start_matches(&base)),
            })
            .collect();
        assert_eq!(
            s,
            [
                "web /article",
                "web /latin",
                "web /article",
                "fetch /loop",
                "http_status /missing",
                "book /book.txt",
                "book /tides.pdf",
                "unsupported /image",
                "too_large /big",
                "fetch /slow",
            ]
        );
        let article = items[0].as_ref().unwrap();
        assert!(article.text.contains("Turbines sit on the sea bed.") && !article.text.contains("FOOTER-COPYRIGHT"));
        let latin = items[1].as_ref().unwrap();
        assert_eq!(latin.decoding.encoding, "windows-1252");
        assert!(latin.text.contains("Le café crème est très bon"), "{}", latin.text);
        assert_eq!(
            items[2].as_ref().unwrap().id,
            rwkv_sources::DocId::new(DocKind::Web, &format!("{base}/redirect"), "")
        );
        assert_eq!(items[5].as_ref().unwrap().parts.len(), 4);
        let slow = items[9].as_ref().unwrap_err().to_string();
        assert!(slow.contains("timed out"), "{slow}");
    });
}
