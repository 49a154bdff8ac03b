//! Merging replica streams into one session timeline for readers.

use crate::segment::RecordedEvent;

/// Merges streams (each in `seq` order) into one sequence ordered by `ts`, ties broken by
/// replica then `seq`. Each stream's own order is kept even if its clock stepped backwards.
pub fn merge_by_time(streams: Vec<Vec<RecordedEvent>>) -> Vec<RecordedEvent> {
    let total = streams.iter().map(Vec::len).sum();
    let mut cursors: Vec<std::iter::Peekable<std::vec::IntoIter<RecordedEvent>>> =
        streams.into_iter().map(|s| s.into_iter().peekable()).collect();
    let mut merged = Vec::with_capacity(total);
    loop {
        let next = cursors
            .iter_mut()
            .enumerate()
            .filter_map(|(i, c)| c.peek().map(|e| (i, e)))
            .min_by(|(_, a), (_, b)| {
                (a.event.ts, &a.event.replica, a.event.seq).cmp(&(
                    b.event.ts,
                    &b.event.replica,
                    b.event.seq,
                ))
            })
            .map(|(i, _)| i);
        let Some(event) = next.and_then(|i| cursors.get_mut(i)).and_then(Iterator::next) else {
            break;
        };
        merged.push(event);
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventBody;
    use crate::fixtures::{SESSION, request, ts};
    use crate::segment::{SegmentReader, SegmentWriter};

    fn stream(replica: &str, times: &[u64]) -> Vec<RecordedEvent> {
        let mut writer = SegmentWriter::new(SESSION, replica);
        for (i, t) in times.iter().enumerate() {
            writer.append(ts(*t), EventBody::Request(request(&format!("{replica}-{i}")))).unwrap();
        }
        let seg = writer.finish_segment().unwrap().unwrap();
        SegmentReader::read_all(&seg.bytes).unwrap()
    }

    #[test]
    fn replicas_interleave_by_timestamp_and_keep_their_own_order() {
        let merged = merge_by_time(vec![stream("a", &[1, 4, 5]), stream("b", &[2, 3, 6]), vec![]]);
        let order: Vec<(String, u64)> =
            merged.iter().map(|e| (e.event.replica.clone(), e.event.seq)).collect();
        let expected = [("a", 1), ("b", 1), ("b", 2), ("a", 2), ("a", 3), ("b", 3)];
        assert_eq!(order, expected.map(|(r, s)| (r.to_owned(), s)));
    }
}
