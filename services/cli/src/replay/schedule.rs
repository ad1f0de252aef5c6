//! When each request is sent, and how timestamps are rebased: pure functions of the data's
//! times, the speed and the clock.
//!
//! - A request's **data time** is the latest end of its spans: an SDK exports a span once it
//!   has ended, and a batch once its last span has.
//! - Request *i* is due `(T_i − T_0) / speed` after the replay starts, `T_0` being the first
//!   request's data time. A request whose data time is before an earlier request's is due at
//!   once (time never runs backwards); a replay that falls behind sends as fast as the endpoint
//!   answers and reports how far behind it is. Speed 0: no pacing at all.
//! - **Rebase** shifts every timestamp of every span (start, end, event times) by one offset,
//!   so relative timing, durations and the spans each window holds are unchanged. The offset
//!   puts the last request's data time at a target — `now`: the moment the replay sends that
//!   request (its start plus `(T_last − T_0) / speed`; at speed 1 every request then carries
//!   spans that end just as it is sent, as live traffic does; at higher speeds the data lies in
//!   the past, never in the future); or a given instant — and is then rounded down to a
//!   multiple of the alignment (default one minute), so that windows of a length dividing it
//!   hold exactly the spans they held before, shifted.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// Where the rebased data ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebase {
    /// The last request's spans end when the replay sends it.
    Now,
    /// The last request's spans end at this instant, unix ns.
    At(u64),
}

/// The latest span end of a request, unix ns (`None` without spans).
pub fn data_time(request: &ExportTraceServiceRequest) -> Option<u64> {
    spans(request).map(|s| s.end_time_unix_nano).max()
}

fn spans(
    request: &ExportTraceServiceRequest,
) -> impl Iterator<Item = &opentelemetry_proto::tonic::trace::v1::Span> {
    request
        .resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter().flat_map(|ss| &ss.spans))
}

/// Spans in a request.
pub fn span_count(request: &ExportTraceServiceRequest) -> u64 {
    spans(request).count() as u64
}

fn shift_one(t: &mut u64, offset_ns: i64) {
    // 0 means "unset": it stays unset (validation rejects it either way).
    if *t != 0 {
        let shifted = i128::from(*t) + i128::from(offset_ns);
        *t = u64::try_from(shifted.max(1)).unwrap_or(u64::MAX);
    }
}

/// Shifts every timestamp of every span of `request` by `offset_ns` (saturating; a zero
/// timestamp stays zero).
pub fn shift(request: &mut ExportTraceServiceRequest, offset_ns: i64) {
    if offset_ns == 0 {
        return;
    }
    for span in request
        .resource_spans
        .iter_mut()
        .flat_map(|rs| rs.scope_spans.iter_mut().flat_map(|ss| ss.spans.iter_mut()))
    {
        shift_one(&mut span.start_time_unix_nano, offset_ns);
        shift_one(&mut span.end_time_unix_nano, offset_ns);
        for event in &mut span.events {
            shift_one(&mut event.time_unix_nano, offset_ns);
        }
    }
}

/// The replay's wall-clock length for data spanning `first_ns..=last_ns`, ns.
pub fn replay_length_ns(first_ns: u64, last_ns: u64, speed: f64) -> u64 {
    if speed <= 0.0 {
        return 0;
    }
    (last_ns.saturating_sub(first_ns) as f64 / speed) as u64
}

/// The offset that rebases data whose first and last request data times are `first_ns` and
/// `last_ns`, for a replay starting at `now_ns`; rounded down to a multiple of `align_ns`
/// (no rounding when 0).
pub fn rebase_offset(
    rebase: Rebase,
    first_ns: u64,
    last_ns: u64,
    now_ns: u64,
    speed: f64,
    align_ns: u64,
) -> i64 {
    let target = match rebase {
        Rebase::Now => now_ns.saturating_add(replay_length_ns(first_ns, last_ns, speed)),
        Rebase::At(t) => t,
    };
    let mut offset = i128::from(target) - i128::from(last_ns);
    if align_ns > 0 {
        offset = offset.div_euclid(i128::from(align_ns)) * i128::from(align_ns);
    }
    i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX })
}

/// Paces requests by their data times.
#[derive(Debug, Clone)]
pub struct Pacer {
    speed: f64,
    first: Option<u64>,
    latest: u64,
}

impl Pacer {
    pub fn new(speed: f64) -> Self {
        Self {
            speed,
            first: None,
            latest: 0,
        }
    }

    /// How long after the replay's start a request of data time `t` is due (`None` for a
    /// request without spans: due at once).
    pub fn due_ns(&mut self, t: Option<u64>) -> u64 {
        let Some(t) = t else {
            return 0;
        };
        let first = *self.first.get_or_insert(t);
        self.latest = self.latest.max(t);
        replay_length_ns(first, self.latest, self.speed)
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};

    use super::*;

    const S: u64 = 1_000_000_000;

    fn request(times: &[(u64, u64)]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: times
                        .iter()
                        .map(|&(start, end)| Span {
                            start_time_unix_nano: start,
                            end_time_unix_nano: end,
                            events: vec![span::Event {
                                time_unix_nano: start + 1,
                                ..span::Event::default()
                            }],
                            ..Span::default()
                        })
                        .collect(),
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    #[test]
    fn data_time_is_the_latest_end() {
        let r = request(&[(10, 50), (20, 40)]);
        assert_eq!(data_time(&r), Some(50));
        assert_eq!(span_count(&r), 2);
        assert_eq!(data_time(&ExportTraceServiceRequest::default()), None);
    }

    #[test]
    fn shifting_moves_every_timestamp_and_keeps_unset_ones() {
        let mut r = request(&[(10 * S, 11 * S), (0, 5 * S)]);
        shift(&mut r, -3 * S as i64);
        let s = &r.resource_spans[0].scope_spans[0].spans;
        assert_eq!(
            (s[0].start_time_unix_nano, s[0].end_time_unix_nano),
            (7 * S, 8 * S)
        );
        assert_eq!(s[0].events[0].time_unix_nano, 7 * S + 1);
        assert_eq!(
            (s[1].start_time_unix_nano, s[1].end_time_unix_nano),
            (0, 2 * S)
        );
        shift(&mut r, -100 * S as i64);
        let s = &r.resource_spans[0].scope_spans[0].spans;
        assert_eq!(s[0].end_time_unix_nano, 1, "saturates above zero");
    }

    #[test]
    fn rebase_offsets() {
        // Data from 1000 s to 1600 s; replay starts at 10_000 s.
        let (first, last, now) = (1_000 * S, 1_600 * S, 10_000 * S);
        // Speed 1: the last request's spans end as it is sent, 600 s after the start.
        assert_eq!(
            rebase_offset(Rebase::Now, first, last, now, 1.0, 0),
            (10_600 - 1_600) * S as i64
        );
        // Speed 60: the replay lasts 10 s.
        assert_eq!(
            rebase_offset(Rebase::Now, first, last, now, 60.0, 0),
            (10_010 - 1_600) * S as i64
        );
        // Rounded down to whole minutes: never later than the target.
        assert_eq!(
            rebase_offset(Rebase::Now, first, last, now, 60.0, 60 * S),
            8_400 * S as i64
        );
        // Unpaced: the data ends now.
        assert_eq!(
            rebase_offset(Rebase::Now, first, last, now, 0.0, 0),
            (10_000 - 1_600) * S as i64
        );
        // Into the past: negative offsets round down too.
        assert_eq!(
            rebase_offset(Rebase::At(1_570 * S), first, last, now, 1.0, 60 * S),
            -60 * S as i64
        );
        assert_eq!(
            rebase_offset(Rebase::At(1_660 * S), first, last, now, 1.0, 60 * S),
            60 * S as i64
        );
    }

    #[test]
    fn pacing_follows_data_time_and_never_goes_back() {
        let mut p = Pacer::new(10.0);
        assert_eq!(p.due_ns(Some(100 * S)), 0);
        assert_eq!(p.due_ns(Some(110 * S)), S);
        assert_eq!(p.due_ns(Some(105 * S)), S, "older data: due at once");
        assert_eq!(p.due_ns(None), 0);
        assert_eq!(p.due_ns(Some(130 * S)), 3 * S);
        let mut unpaced = Pacer::new(0.0);
        assert_eq!(unpaced.due_ns(Some(100 * S)), 0);
        assert_eq!(unpaced.due_ns(Some(10_000 * S)), 0);
    }
}
