//! Performs the HTTP requests script nodes ask for (the engine's effect), with a real client:
//! the timeout the node names, the answer read up to a bound, every failure an `Answer::Failed`.

use std::time::Duration;

use crate::engine::script::{ANSWER_BYTES_MAX, Method};
use crate::engine::{Answer, Request};

/// Performs `request`; never fails, a failure is an answer the script routes on.
pub async fn perform(client: &reqwest::Client, request: &Request) -> Answer {
    let mut builder = match request.method {
        Method::Get => client.get(&request.url),
        Method::Post => client.post(&request.url),
    };
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    if let Some((content_type, body)) = &request.body {
        builder = builder.header(reqwest::header::CONTENT_TYPE, content_type.as_str()).body(body.clone());
    }
    let timeout = Duration::from_millis(u64::from(request.timeout_ms));
    let exchange = async {
        let mut response = builder.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > ANSWER_BYTES_MAX {
                return Err(format!("answer over {ANSWER_BYTES_MAX} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok::<_, String>(Answer::Http { status, body })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(reason)) => Answer::Failed { reason },
        Err(_) => Answer::Failed { reason: format!("no answer within {} ms", request.timeout_ms) },
    }
}
