//! The Prometheus recorder behind the `metrics` facade (installed once per process, no listener
//! of its own) and `GET /metrics` on the admin listener, in the text exposition format.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::warn;
use warp::http::StatusCode;

use crate::node::{App, metrics};
use crate::store;

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";
/// How often histogram samples are folded into their buckets between scrapes, so an unscraped
/// node holds no more than this interval's samples.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Bucket bounds (seconds) of the latency histograms: webhooks, commits, fsyncs, scripts. A
/// webhook answers in about a millisecond without fsync, a few with; a script may take up to the
/// webhook's 5 s.
const SECONDS_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Bucket bounds of the group-commit batch size (writes per fsync).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on the first call; `None` when another recorder was
/// installed first (the metrics then go there, and `/metrics` answers 503).
pub(crate) fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(store::BATCH_WRITES.into()), BATCH_BUCKETS)
                });
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(e) => {
                    warn!(error = %e, "cannot build the metrics recorder");
                    return None;
                }
            };
            let handle = recorder.handle();
            if let Err(e) = ::metrics::set_global_recorder(recorder) {
                warn!(error = %e, "another metrics recorder is installed: /metrics is off");
                return None;
            }
            metrics::describe();
            metrics::register_fixed();
            Some(handle)
        })
        .as_ref()
}

/// Folds histogram samples every `UPKEEP_INTERVAL`, until aborted.
pub(crate) async fn upkeep_forever() {
    let Some(handle) = handle() else { return };
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// `GET /metrics`: the text exposition of every metric, the gauges read from `app` refreshed.
pub(crate) fn render(app: &Arc<App>) -> warp::reply::Response {
    let Some(handle) = handle() else {
        return super::reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics_unavailable",
            "another metrics recorder is installed in this process",
        );
    };
    metrics::refresh(app);
    let mut r = warp::reply::Response::new(handle.render().into());
    r.headers_mut()
        .insert(warp::http::header::CONTENT_TYPE, warp::http::HeaderValue::from_static(CONTENT_TYPE));
    r
}
