//! Span lists: the spans a press holds, linked through their records.
//!
//! Owns: a doubly-linked list of spans of one kind (partly free, wholly
//! free, purged) threaded through the `next` and `prev` fields of the
//! spans' first records, with the kind in their `list` field, so that a
//! span is found in its list and taken out of the middle in constant time,
//! with no memory but the records'.
//!
//! Invariants: a span is on at most one list, the one its `list` field
//! names (`NONE`: none); every list is changed only under its press's
//! lock, which also guards the links of the spans on it.

use core::sync::atomic::Ordering;

use crate::layout::span::SpanRecord;

/// The `list` field of a span on no list.
pub const NONE: u8 = 0;

/// A list of spans of one kind (the non-zero value of their `list`
/// field).
pub struct SpanList {
    kind: u8,
    head: usize,
    tail: usize,
    len: usize,
}

fn record(addr: usize) -> Option<&'static SpanRecord> {
    // SAFETY: list links are 0 or addresses of span records, which are
    // immortal.
    unsafe { (addr as *const SpanRecord).as_ref() }
}

fn addr_of(span: &SpanRecord) -> usize {
    span as *const SpanRecord as usize
}

impl SpanList {
    /// An empty list of spans whose `list` field is `kind` (not `NONE`).
    pub const fn new(kind: u8) -> SpanList {
        SpanList {
            kind,
            head: 0,
            tail: 0,
            len: 0,
        }
    }

    /// The number of spans on the list.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether `span` is on this list.
    pub fn holds(&self, span: &SpanRecord) -> bool {
        span.list.load(Ordering::Relaxed) == self.kind
    }

    /// The first span, if any.
    pub fn first(&self) -> Option<&'static SpanRecord> {
        record(self.head)
    }

    /// Adds `span`, on no list, at the front.
    #[contracts::debug_requires(span.list.load(Ordering::Relaxed) == NONE)]
    pub fn push_front(&mut self, span: &'static SpanRecord) {
        span.prev.store(0, Ordering::Relaxed);
        span.next.store(self.head, Ordering::Relaxed);
        match record(self.head) {
            Some(head) => head.prev.store(addr_of(span), Ordering::Relaxed),
            None => self.tail = addr_of(span),
        }
        self.head = addr_of(span);
        span.list.store(self.kind, Ordering::Relaxed);
        self.len += 1;
    }

    /// Adds `span`, on no list, at the back.
    #[contracts::debug_requires(span.list.load(Ordering::Relaxed) == NONE)]
    pub fn push_back(&mut self, span: &'static SpanRecord) {
        span.next.store(0, Ordering::Relaxed);
        span.prev.store(self.tail, Ordering::Relaxed);
        match record(self.tail) {
            Some(tail) => tail.next.store(addr_of(span), Ordering::Relaxed),
            None => self.head = addr_of(span),
        }
        self.tail = addr_of(span);
        span.list.store(self.kind, Ordering::Relaxed);
        self.len += 1;
    }

    /// Takes `span`, which is on this list, off it.
    #[contracts::debug_requires(self.holds(span))]
    pub fn remove(&mut self, span: &'static SpanRecord) {
        let (prev, next) = (
            span.prev.load(Ordering::Relaxed),
            span.next.load(Ordering::Relaxed),
        );
        match record(prev) {
            Some(before) => before.next.store(next, Ordering::Relaxed),
            None => self.head = next,
        }
        match record(next) {
            Some(after) => after.prev.store(prev, Ordering::Relaxed),
            None => self.tail = prev,
        }
        span.list.store(NONE, Ordering::Relaxed);
        self.len -= 1;
    }

    /// Takes the first span off the list.
    pub fn pop_front(&mut self) -> Option<&'static SpanRecord> {
        let span = record(self.head)?;
        self.remove(span);
        Some(span)
    }

    /// Takes the last span off the list.
    pub fn pop_back(&mut self) -> Option<&'static SpanRecord> {
        let span = record(self.tail)?;
        self.remove(span);
        Some(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(n: usize) -> &'static [SpanRecord] {
        // SAFETY: an all-zero record is a valid unused record.
        let records: Vec<SpanRecord> = (0..n).map(|_| unsafe { core::mem::zeroed() }).collect();
        Vec::leak(records)
    }

    #[test]
    fn spans_come_off_either_end_and_the_middle() {
        let s = spans(4);
        let mut list = SpanList::new(1);
        list.push_back(&s[0]);
        list.push_back(&s[1]);
        list.push_front(&s[2]);
        list.push_back(&s[3]);
        assert_eq!(list.len(), 4);
        assert!(list.holds(&s[1]));
        list.remove(&s[1]);
        assert!(!list.holds(&s[1]));
        assert!(core::ptr::eq(list.pop_front().unwrap(), &s[2]));
        assert!(core::ptr::eq(list.pop_back().unwrap(), &s[3]));
        assert!(core::ptr::eq(list.first().unwrap(), &s[0]));
        assert!(core::ptr::eq(list.pop_back().unwrap(), &s[0]));
        assert!(list.pop_front().is_none() && list.len() == 0);
        list.push_front(&s[1]);
        assert!(core::ptr::eq(list.pop_back().unwrap(), &s[1]));
    }
}
