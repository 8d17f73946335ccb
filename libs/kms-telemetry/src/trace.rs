//! One trace per API call across every service it reaches: the W3C `traceparent` a bus
//! call sends comes from the calling span ([`outgoing`]), and the serving side makes its
//! span a child of it ([`continue_trace`]).
//!
//! Without trace export the spans carry no OpenTelemetry context and the bus sends the
//! traceparent it derives from the request id, as before; with export, a span with no
//! parent (a call the scheduler makes, say) takes that derived traceparent as its remote
//! parent, so its trace id is still the request id.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

/// The remote context a `traceparent` value names, if it is well-formed.
fn extract(traceparent: &str) -> Option<Context> {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// The `traceparent` of `cx`'s span, if it has a valid one.
fn inject(cx: &Context) -> Option<String> {
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The `traceparent` to send with a call made in `span`, a span just created for the
/// call (its parent is the current span). `fallback` is the traceparent the caller would
/// send without trace export: it becomes `span`'s remote parent when `span` has no
/// parent of its own, and is what this returns when spans carry no trace context.
pub fn outgoing(span: &tracing::Span, fallback: Option<String>) -> Option<String> {
    let parent_is_traced = tracing::Span::current().context().span().span_context().is_valid();
    if !parent_is_traced {
        if let Some(remote) = fallback.as_deref().and_then(extract) {
            // Fails only once the span's context is built, which nothing did yet.
            let _ = span.set_parent(remote);
        }
    }
    inject(&span.context()).or(fallback)
}

/// Makes `span`, a span for serving a request, the child of the caller's span that
/// `traceparent` names. Malformed or empty values leave `span` a root.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    if let Some(remote) = extract(traceparent) {
        let _ = span.set_parent(remote);
    }
}

/// The trace id a `traceparent` names (32 hex digits), for log lines.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, trace) = (parts.next()?, parts.next()?);
    (trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit())).then_some(trace)
}

/// A span whose descendants are not sampled, here or in the services its calls reach:
/// for the readiness probes' bus calls, which would otherwise make a trace each.
pub fn unsampled(name: &'static str) -> tracing::Span {
    let span = tracing::info_span!("unsampled", otel.name = name);
    let ids = RandomIdGenerator::default();
    let remote = SpanContext::new(
        ids.new_trace_id(),
        ids.new_span_id(),
        TraceFlags::default(),
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(Context::new().with_remote_span_context(remote));
    span
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const CALLER_SPAN: &str = "b7ad6b7169203331";

    /// Runs `f` under a subscriber that records spans in memory; returns them.
    fn traced(f: impl FnOnce()) -> Vec<SpanData> {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f);
        provider.force_flush().unwrap();
        exporter.get_finished_spans().unwrap()
    }

    fn parts(traceparent: &str) -> Vec<String> {
        traceparent.split('-').map(str::to_owned).collect()
    }

    #[test]
    fn the_serving_side_continues_the_callers_trace() {
        let mut sent = None;
        let spans = traced(|| {
            let serve = tracing::info_span!("serve");
            continue_trace(&serve, &format!("00-{TRACE}-{CALLER_SPAN}-01"));
            serve.in_scope(|| {
                let call = tracing::info_span!("call");
                sent =
                    outgoing(&call, Some(format!("00-{}-{}-01", "1".repeat(32), "2".repeat(16))));
            });
        });
        let serve = spans.iter().find(|s| s.name == "serve").unwrap();
        let call = spans.iter().find(|s| s.name == "call").unwrap();
        let trace = TraceId::from_hex(TRACE).unwrap();
        assert_eq!(serve.span_context.trace_id(), trace);
        assert_eq!(serve.parent_span_id, SpanId::from_hex(CALLER_SPAN).unwrap());
        assert_eq!(call.span_context.trace_id(), trace, "the fallback is ignored under a parent");
        assert_eq!(call.parent_span_id, serve.span_context.span_id());
        let sent = parts(&sent.unwrap());
        assert_eq!(sent[1], TRACE);
        assert_eq!(sent[2], call.span_context.span_id().to_string(), "the call's own span");
        assert_eq!(sent[3], "01");
    }

    #[test]
    fn a_call_without_parent_takes_the_request_id_trace() {
        let fallback = format!("00-{TRACE}-{CALLER_SPAN}-01");
        let mut sent = None;
        let spans = traced(|| {
            let call = tracing::info_span!("call");
            sent = outgoing(&call, Some(fallback.clone()));
        });
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].span_context.trace_id(), TraceId::from_hex(TRACE).unwrap());
        let sent = parts(&sent.unwrap());
        assert_eq!((sent[1].as_str(), sent[3].as_str()), (TRACE, "01"));
        assert_eq!(sent[2], spans[0].span_context.span_id().to_string());
    }

    #[test]
    fn without_trace_export_the_fallback_goes_out() {
        let fallback = Some(format!("00-{TRACE}-{CALLER_SPAN}-01"));
        let call = tracing::info_span!("call");
        assert_eq!(outgoing(&call, fallback.clone()), fallback);
        assert_eq!(outgoing(&call, None), None);
    }

    #[test]
    fn probes_make_no_traces() {
        let mut sent = None;
        let spans = traced(|| {
            unsampled("probe").in_scope(|| {
                let call = tracing::info_span!("call");
                sent = outgoing(&call, None);
            });
            let serve = tracing::info_span!("serve");
            continue_trace(&serve, sent.as_deref().unwrap());
            serve.in_scope(|| tracing::info!("served"));
        });
        assert!(spans.is_empty(), "{spans:?}");
        assert!(sent.unwrap().ends_with("-00"), "not sampled downstream either");
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for bad in [
            "",
            "garbage",
            "00-short-b7ad6b7169203331-01",
            &format!("00-{}-{CALLER_SPAN}-01", "0".repeat(32)),
        ] {
            assert!(extract(bad).is_none(), "{bad:?}");
        }
        let spans = traced(|| {
            let serve = tracing::info_span!("serve");
            continue_trace(&serve, "garbage");
            drop(serve);
        });
        assert_eq!(spans[0].parent_span_id, SpanId::INVALID);
    }

    #[test]
    fn trace_ids_for_logs() {
        assert_eq!(trace_id(&format!("00-{TRACE}-{CALLER_SPAN}-01")), Some(TRACE));
        assert_eq!(trace_id("00-xyz-b7ad6b7169203331-01"), None);
        assert_eq!(trace_id(""), None);
    }
}
