//! Query plan evaluation: one page of the documents a [`Plan`] selects, in
//! `DocId` order after a cursor, without materialising the candidate set.
//!
//! Every plan node answers `seek(q)`: the smallest matching document id
//! strictly above `q`, with the row holding it. `All` and `Ids` seek the
//! `ids` table (in `DocId` order). Index leaves read tables in row order
//! (postings, the range index, `multi`: rows are insertion order), so they
//! answer from a window: one scan of their key range keeps the
//! [`RANGE_CHUNK_DOCS_MAX`] smallest doc ids above `q` (each posting carries
//! its doc id, so no lookup per posting), rescanned when consumed. `Or`
//! takes the minimum of its children; `And` lets its smallest child drive
//! and tests each candidate against the others by point lookups
//! (`contains`, by row).
//!
//! Several ranges on one index inside an `And` (how `{f: {$gte: a, $lt: b}}`
//! arrives: MongoDB matches each bound against any array element, so the
//! client cannot send one interval) become one `Meet` node: a scan of the
//! intersection of their intervals, united with a check of the few
//! documents that hold two or more distinct values in that index (the
//! `multi` table). Its cost follows the result, not the half-open ranges.
//!
//! Work per page is bounded: at most `page_docs_max` documents, at most
//! [`PAGE_BYTES_MAX`] bytes of them, and at most [`CANDIDATES_PER_PAGE_MAX`]
//! rejected candidates. When the last bound stops a page early, the answer
//! is a short (possibly empty) page whose `next` cursor resumes after the
//! last candidate examined, so a client always makes progress.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::Bound;

use fluence_proto::codec::{Decode, Reader};
use fluence_proto::limits::{
    DOCUMENT_CIPHERTEXT_LEN_MAX, MESSAGE_LEN_MAX, ORE_CIPHERTEXT_LEN_MAX, PAGE_DOCS_MAX,
    PLAN_DEPTH_MAX, PLAN_FANOUT_MAX, WRAPPED_KEY_LEN_MAX,
};
use fluence_proto::{
    DocEntry, DocId, IndexId, IndexKind, IndexValues, OreBound, Plan, SealedDoc, Token,
};
use redb::{ReadOnlyMultimapTable, ReadOnlyTable, ReadTransaction, ReadableTable};

use crate::error::{FindError, StoreError};
use crate::layout::{
    self, Meta, ID_RECORD_LEN, MULTI_KEY_LEN, POSTING_KEY_LEN, RANGE_VALUE_LEN, ROW_LEN,
};
use crate::order::{
    range_key, FixedBytes, OreOrder, RangeKey, MARKER_MAX, MARKER_MIN, MARKER_VALUE,
};

/// Bytes of document ciphertext (plus framing) in one page. One document
/// may exceed it alone, so any document can be served; the sum stays far
/// below `MESSAGE_LEN_MAX`.
pub const PAGE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Candidates an `And` (or an `Ids` leaf) may reject while filling one page
/// before answering early with a resumable cursor.
pub const CANDIDATES_PER_PAGE_MAX: u64 = 1 << 20;
/// Documents an index leaf (tokens, range, the multi-valued walk) buffers
/// per scan of its key range. A leaf that selects more is rescanned once
/// per this many documents consumed.
pub const RANGE_CHUNK_DOCS_MAX: usize = 4096;
/// Postings counted to estimate a leaf's size when choosing an `And`
/// driver; beyond it a leaf counts as "large".
pub const ESTIMATE_SCAN_MAX: u64 = 1024;

/// Framing bytes of one `DocEntry` besides key and ciphertext: doc id,
/// version, two length prefixes.
const DOC_ENTRY_OVERHEAD: usize = 16 + 8 + 4 + 4;

const _: () = assert!(
    PAGE_BYTES_MAX + DOC_ENTRY_OVERHEAD + WRAPPED_KEY_LEN_MAX + DOCUMENT_CIPHERTEXT_LEN_MAX + 1024
        < MESSAGE_LEN_MAX
);

/// One page of a `find` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub docs: Vec<DocEntry>,
    /// Cursor for the next page; `None` when nothing selected remains.
    pub next: Option<DocId>,
}

/// A document an index selects: its id (the page order) and its row (the
/// key of its records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Cand {
    doc: DocId,
    row: u64,
}

/// Answer of a seek past `q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seek {
    /// The smallest match above `q`.
    Found(Cand),
    /// No match in `(q, d]`; the work budget ran out at `d`.
    Paused(DocId),
    /// No match above `q`.
    End,
}

impl Seek {
    /// Whether this answer to an earlier query `q0 <= q` also answers `q`.
    fn still_answers(&self, q: Option<DocId>) -> bool {
        match self {
            Seek::Found(Cand { doc: d, .. }) | Seek::Paused(d) => Some(*d) > q,
            Seek::End => true,
        }
    }

    /// Sort key for a union: earlier docs first, `Found` before `Paused`.
    fn union_key(&self) -> Option<(DocId, u8)> {
        match self {
            Seek::Found(c) => Some((c.doc, 0)),
            Seek::Paused(d) => Some((*d, 1)),
            Seek::End => None,
        }
    }
}

/// The tables a query reads, opened once per `find`.
pub(crate) struct Tables<O: OreOrder> {
    pub ids: ReadOnlyTable<FixedBytes<16>, FixedBytes<ID_RECORD_LEN>>,
    pub docs: ReadOnlyTable<FixedBytes<ROW_LEN>, &'static [u8]>,
    pub entries: ReadOnlyTable<FixedBytes<ROW_LEN>, &'static [u8]>,
    pub postings: ReadOnlyTable<FixedBytes<POSTING_KEY_LEN>, FixedBytes<16>>,
    pub range: ReadOnlyMultimapTable<RangeKey<O>, FixedBytes<RANGE_VALUE_LEN>>,
    pub multi: ReadOnlyTable<FixedBytes<MULTI_KEY_LEN>, FixedBytes<16>>,
}

impl<O: OreOrder> Tables<O> {
    pub fn open(txn: &ReadTransaction) -> Result<Self, StoreError> {
        Ok(Tables {
            ids: txn.open_table(layout::IDS)?,
            docs: txn.open_table(layout::DOCS)?,
            entries: txn.open_table(layout::ENTRIES)?,
            postings: txn.open_table(layout::POSTINGS)?,
            range: txn.open_multimap_table(layout::range_table::<O>())?,
            multi: txn.open_table(layout::MULTI)?,
        })
    }
}

struct Ctx<O: OreOrder> {
    tables: Tables<O>,
    /// Rejected candidates still allowed on this page.
    budget: u64,
}

impl<O: OreOrder> Ctx<O> {
    /// Spends one unit of the page's work budget; false once it is gone.
    fn spend(&mut self) -> bool {
        if self.budget == 0 {
            return false;
        }
        self.budget -= 1;
        true
    }
}

/// A range bound on ORE ciphertexts.
#[derive(Debug, Clone)]
struct CtBound {
    ct: Vec<u8>,
    inclusive: bool,
}

/// A compiled plan node.
enum Node {
    Empty,
    All,
    Ids(Vec<DocId>),
    Tokens(TokensNode),
    Range(RangeNode),
    Meet(MeetNode),
    And {
        driver: Box<Node>,
        filters: Vec<Node>,
    },
    Or(Vec<OrChild>),
}

struct TokensNode {
    index: IndexId,
    tokens: Vec<Token>,
    window: Window,
}

struct RangeNode {
    index: IndexId,
    lower: Option<CtBound>,
    upper: Option<CtBound>,
    window: Window,
}

/// The smallest candidates of an index leaf above a query, from one scan
/// of its key range (which is in row order, not `DocId` order).
struct Window {
    /// Smallest candidates above `buffer_from`, ascending by doc id.
    buffer: VecDeque<Cand>,
    buffer_from: Option<Option<DocId>>,
    /// Whether `buffer` holds every candidate above `buffer_from`.
    complete: bool,
}

/// Collects a window while its leaf scans: keeps the
/// `RANGE_CHUNK_DOCS_MAX` smallest candidates above `q`.
struct WindowFill {
    q: Option<DocId>,
    kept: BTreeSet<Cand>,
    complete: bool,
}

/// The `And` of two or more ranges on one index: a document matches iff
/// for every child some value of it lies within the child's bounds.
///
/// Every child's interval contains the intersection `[L, U]` (L the
/// tightest lower bound, U the tightest upper), so a document with a value
/// in `[L, U]` matches; a document whose values are all one plaintext
/// matches only then. So the matches are the intersection scan's docs plus
/// those multi-valued docs (`multi` table) that pass every child.
struct MeetNode {
    index: IndexId,
    /// Bounds of every merged range, tested against a doc's entries.
    children: Vec<(Option<CtBound>, Option<CtBound>)>,
    /// Scan of `[L, U]`; `None` when the intervals do not intersect (then
    /// only multi-valued documents can match).
    scan: Option<RangeNode>,
    /// The index's multi-valued documents, in `DocId` order.
    multi: Window,
    /// Last answer of the multi-valued walk and the query it answered.
    multi_cached: Option<(Option<DocId>, Seek)>,
}

struct OrChild {
    node: Node,
    /// The last answer of this child and the query it answered.
    cached: Option<(Option<DocId>, Seek)>,
}

/// Evaluates `plan` to one page, rejecting at most `candidates_max`
/// (capped at `CANDIDATES_PER_PAGE_MAX`) candidates.
pub(crate) fn find<O: OreOrder>(
    txn: &ReadTransaction,
    meta: &Meta,
    plan: &Plan,
    after: Option<DocId>,
    page_docs_max: usize,
    candidates_max: u64,
) -> Result<Page, FindError> {
    if page_docs_max == 0 {
        return Err(FindError::BadPlan(
            "page_docs_max must be at least 1".into(),
        ));
    }
    let page_docs_max = page_docs_max.min(PAGE_DOCS_MAX);
    let kinds: HashMap<IndexId, IndexKind> = meta.indexes.iter().map(|d| (d.id, d.kind)).collect();
    let mut ctx = Ctx::<O> {
        tables: Tables::open(txn)?,
        budget: candidates_max.min(CANDIDATES_PER_PAGE_MAX),
    };
    let mut root = compile::<O>(&mut ctx, &kinds, plan, 1)?;

    let mut docs = Vec::new();
    let mut page_bytes = 0usize;
    let mut cursor = after;
    // At most page_docs_max documents are taken, plus one seek to learn
    // whether anything follows.
    for _ in 0..=page_docs_max {
        let cand = match root.seek(&mut ctx, cursor)? {
            Seek::End => return Ok(Page { docs, next: None }),
            Seek::Paused(at) => {
                return Ok(Page {
                    docs,
                    next: Some(at),
                })
            }
            Seek::Found(cand) => cand,
        };
        let doc = cand.doc;
        // Holds by construction (every seek reads strictly above the
        // cursor); checked rather than asserted because it rests on the
        // order of keys read from disk.
        if Some(doc) <= cursor {
            return Err(StoreError::Corrupt("an index is out of order".into()).into());
        }
        if docs.len() == page_docs_max {
            return Ok(Page { docs, next: cursor });
        }
        let sealed = read_sealed(&ctx.tables.docs, cand.row, &doc)?;
        let size = DOC_ENTRY_OVERHEAD + sealed.wrapped_key.len() + sealed.ciphertext.len();
        if !docs.is_empty() && page_bytes + size > PAGE_BYTES_MAX {
            return Ok(Page { docs, next: cursor });
        }
        page_bytes += size;
        docs.push(DocEntry { doc, sealed });
        cursor = Some(doc);
    }
    unreachable!("the page loop returns by its last iteration")
}

/// The canonical `SealedDoc` bytes at `row`, which `ids` or an index says
/// holds `doc`: a missing row, or a row holding another document, is
/// corruption (an index pointing at the wrong record must never serve it).
fn doc_record<'g>(
    guard: &'g Option<redb::AccessGuard<'_, &'static [u8]>>,
    row: u64,
    doc: &DocId,
) -> Result<&'g [u8], StoreError> {
    let Some(guard) = guard else {
        return Err(StoreError::Corrupt(format!(
            "an index lists document {doc} at row {row}, which does not exist"
        )));
    };
    let (stored, sealed) = layout::split_doc_record(guard.value())?;
    if stored != *doc {
        return Err(StoreError::Corrupt(format!(
            "row {row} holds document {stored}, an index says {doc}"
        )));
    }
    Ok(sealed)
}

/// Reads and decodes the document `doc` at `row`.
pub(crate) fn read_sealed(
    docs: &impl ReadableTable<FixedBytes<ROW_LEN>, &'static [u8]>,
    row: u64,
    doc: &DocId,
) -> Result<SealedDoc, StoreError> {
    let guard = docs.get(&layout::row_key(row)[..])?;
    let sealed = doc_record(&guard, row, doc)?;
    SealedDoc::from_bytes(sealed)
        .map_err(|e| StoreError::Corrupt(format!("document {doc} record: {e}")))
}

/// Reads only the version of the document `doc` at `row` (the first field
/// of its sealed bytes), without copying the ciphertext.
pub(crate) fn read_version(
    docs: &impl ReadableTable<FixedBytes<ROW_LEN>, &'static [u8]>,
    row: u64,
    doc: &DocId,
) -> Result<u64, StoreError> {
    let guard = docs.get(&layout::row_key(row)[..])?;
    let sealed = doc_record(&guard, row, doc)?;
    Reader::new(sealed)
        .u64("document version")
        .map_err(|e| StoreError::Corrupt(format!("document {doc} record: {e}")))
}

fn bad(text: impl Into<String>) -> FindError {
    FindError::BadPlan(text.into())
}

fn check_fanout(len: usize, what: &str) -> Result<(), FindError> {
    if len > PLAN_FANOUT_MAX {
        return Err(bad(format!(
            "{what} has {len} items, above PLAN_FANOUT_MAX"
        )));
    }
    Ok(())
}

fn index_kind(
    kinds: &HashMap<IndexId, IndexKind>,
    index: &IndexId,
) -> Result<IndexKind, FindError> {
    kinds
        .get(index)
        .copied()
        .ok_or_else(|| bad(format!("index {index} is not declared in this dataset")))
}

fn ct_bound<O: OreOrder>(bound: &Option<OreBound>) -> Result<Option<CtBound>, FindError> {
    let Some(bound) = bound else { return Ok(None) };
    if bound.ct.len() > ORE_CIPHERTEXT_LEN_MAX || !O::validate(&bound.ct) {
        return Err(bad("range bound is not a valid ORE ciphertext"));
    }
    Ok(Some(CtBound {
        ct: bound.ct.clone(),
        inclusive: bound.inclusive,
    }))
}

/// Compiles and validates a plan against the declared indexes.
fn compile<O: OreOrder>(
    ctx: &mut Ctx<O>,
    kinds: &HashMap<IndexId, IndexKind>,
    plan: &Plan,
    depth: usize,
) -> Result<Node, FindError> {
    if depth > PLAN_DEPTH_MAX {
        return Err(bad("plan is nested deeper than PLAN_DEPTH_MAX"));
    }
    Ok(match plan {
        Plan::All => Node::All,
        Plan::Ids(ids) => {
            check_fanout(ids.len(), "id list")?;
            let mut ids = ids.clone();
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() {
                Node::Empty
            } else {
                Node::Ids(ids)
            }
        }
        Plan::Tokens { index, any_of } => {
            check_fanout(any_of.len(), "token list")?;
            match index_kind(kinds, index)? {
                IndexKind::Eq | IndexKind::Text => {}
                IndexKind::Range => {
                    return Err(bad(format!(
                        "index {index} is a range index: query it with a range"
                    )))
                }
            }
            let mut tokens = any_of.clone();
            tokens.sort_unstable();
            tokens.dedup();
            if tokens.is_empty() {
                Node::Empty
            } else {
                Node::Tokens(TokensNode {
                    index: *index,
                    tokens,
                    window: Window::new(),
                })
            }
        }
        Plan::Range {
            index,
            lower,
            upper,
        } => {
            if index_kind(kinds, index)? != IndexKind::Range {
                return Err(bad(format!("index {index} is not a range index")));
            }
            let lower = ct_bound::<O>(lower)?;
            let upper = ct_bound::<O>(upper)?;
            if let (Some(l), Some(u)) = (&lower, &upper) {
                match O::compare(&l.ct, &u.ct) {
                    Ordering::Greater => return Ok(Node::Empty),
                    Ordering::Equal if !(l.inclusive && u.inclusive) => return Ok(Node::Empty),
                    _ => {}
                }
            }
            Node::Range(RangeNode {
                index: *index,
                lower,
                upper,
                window: Window::new(),
            })
        }
        Plan::And(children) => {
            check_fanout(children.len(), "And")?;
            let mut nodes = Vec::with_capacity(children.len());
            for child in children {
                match compile(ctx, kinds, child, depth + 1)? {
                    // `All` constrains nothing; one empty child empties all.
                    Node::All => {}
                    Node::Empty => return Ok(Node::Empty),
                    node => nodes.push(node),
                }
            }
            let mut nodes = merge_ranges::<O>(nodes);
            if nodes.len() <= 1 {
                return Ok(nodes.pop().unwrap_or(Node::All));
            }
            // The smallest child drives; the others only answer membership.
            let mut best = (u64::MAX, 0usize);
            for (i, node) in nodes.iter().enumerate() {
                let estimate = node.estimate(ctx)?;
                if estimate < best.0 {
                    best = (estimate, i);
                }
            }
            let driver = nodes.swap_remove(best.1);
            Node::And {
                driver: Box::new(driver),
                filters: nodes,
            }
        }
        Plan::Or(children) => {
            check_fanout(children.len(), "Or")?;
            let mut nodes = Vec::with_capacity(children.len());
            for child in children {
                match compile(ctx, kinds, child, depth + 1)? {
                    Node::All => return Ok(Node::All),
                    Node::Empty => {}
                    node => nodes.push(OrChild { node, cached: None }),
                }
            }
            match nodes.len() {
                0 => Node::Empty,
                1 => nodes.pop().map_or(Node::Empty, |child| child.node),
                _ => Node::Or(nodes),
            }
        }
    })
}

/// Which of two lower bounds admits less (`None` is open, the loosest); at
/// one value an exclusive bound is the tighter.
fn tighter_lower<O: OreOrder>(a: &Option<CtBound>, b: &Option<CtBound>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => O::compare(&a.ct, &b.ct).then(b.inclusive.cmp(&a.inclusive)),
    }
}

/// Which of two upper bounds admits less, as `Ordering::Greater` for the
/// tighter (the mirror of [`tighter_lower`]).
fn tighter_upper<O: OreOrder>(a: &Option<CtBound>, b: &Option<CtBound>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => O::compare(&b.ct, &a.ct).then(b.inclusive.cmp(&a.inclusive)),
    }
}

/// Whether no value lies within the bounds (the test `compile` applies to
/// a single range).
fn bounds_empty<O: OreOrder>(lower: &Option<CtBound>, upper: &Option<CtBound>) -> bool {
    match (lower, upper) {
        (Some(l), Some(u)) => match O::compare(&l.ct, &u.ct) {
            Ordering::Greater => true,
            Ordering::Equal => !(l.inclusive && u.inclusive),
            Ordering::Less => false,
        },
        _ => false,
    }
}

/// Replaces the range leaves of one `And` that share an index by one
/// [`MeetNode`] per index (same matches, cost proportional to them).
/// Other children, and an index's single range, are kept as they are.
fn merge_ranges<O: OreOrder>(nodes: Vec<Node>) -> Vec<Node> {
    let mut ranges: Vec<(IndexId, Vec<RangeNode>)> = Vec::new();
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        match node {
            Node::Range(r) => match ranges.iter_mut().find(|(index, _)| *index == r.index) {
                Some((_, group)) => group.push(r),
                None => ranges.push((r.index, vec![r])),
            },
            other => out.push(other),
        }
    }
    for (index, group) in ranges {
        if group.len() == 1 {
            out.extend(group.into_iter().map(Node::Range));
            continue;
        }
        let mut lower: Option<CtBound> = None;
        let mut upper: Option<CtBound> = None;
        for r in &group {
            if tighter_lower::<O>(&r.lower, &lower).is_gt() {
                lower = r.lower.clone();
            }
            if tighter_upper::<O>(&r.upper, &upper).is_gt() {
                upper = r.upper.clone();
            }
        }
        // The merge is exact only if every child's interval contains
        // [lower, upper]. That follows from the choice above when `compare`
        // is the total preorder the `OreOrder` contract promises; checked
        // anyway (O(children)) so a comparator breaking it costs speed,
        // never matches.
        let contains_meet = group.iter().all(|r| {
            tighter_lower::<O>(&r.lower, &lower).is_le()
                && tighter_upper::<O>(&r.upper, &upper).is_le()
        });
        if !contains_meet {
            out.extend(group.into_iter().map(Node::Range));
            continue;
        }
        let scan = (!bounds_empty::<O>(&lower, &upper)).then(|| RangeNode {
            index,
            lower,
            upper,
            window: Window::new(),
        });
        out.push(Node::Meet(MeetNode {
            index,
            children: group.into_iter().map(|r| (r.lower, r.upper)).collect(),
            scan,
            multi: Window::new(),
            multi_cached: None,
        }));
    }
    out
}

/// Lower and upper key bounds of a range node in the range table.
fn range_bounds(
    index: &IndexId,
    lower: &Option<CtBound>,
    upper: &Option<CtBound>,
) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let lower = match lower {
        None => Bound::Included(range_key(index, MARKER_MIN, &[])),
        Some(b) if b.inclusive => Bound::Included(range_key(index, MARKER_VALUE, &b.ct)),
        Some(b) => Bound::Excluded(range_key(index, MARKER_VALUE, &b.ct)),
    };
    let upper = match upper {
        None => Bound::Included(range_key(index, MARKER_MAX, &[])),
        Some(b) if b.inclusive => Bound::Included(range_key(index, MARKER_VALUE, &b.ct)),
        Some(b) => Bound::Excluded(range_key(index, MARKER_VALUE, &b.ct)),
    };
    (lower, upper)
}

fn as_slice_bound(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_slice()),
        Bound::Excluded(key) => Bound::Excluded(key.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Whether an ORE ciphertext lies within the bounds (same order as the
/// range table's keys, so membership and scans agree).
fn ct_in_bounds<O: OreOrder>(ct: &[u8], lower: &Option<CtBound>, upper: &Option<CtBound>) -> bool {
    let above = lower.as_ref().is_none_or(|b| match O::compare(ct, &b.ct) {
        Ordering::Greater => true,
        Ordering::Equal => b.inclusive,
        Ordering::Less => false,
    });
    let below = upper.as_ref().is_none_or(|b| match O::compare(ct, &b.ct) {
        Ordering::Less => true,
        Ordering::Equal => b.inclusive,
        Ordering::Greater => false,
    });
    above && below
}

/// Whether the range values of the document at `row` in `index` pass
/// `test` (one `entries` lookup). A missing doc, or one without values
/// there, matches nothing.
fn range_values_pass<O: OreOrder>(
    tables: &Tables<O>,
    row: u64,
    index: &IndexId,
    test: impl Fn(&[Vec<u8>]) -> bool,
) -> Result<bool, StoreError> {
    let Some(guard) = tables.entries.get(&layout::row_key(row)[..])? else {
        return Ok(false);
    };
    let entries = layout::decode_entries(guard.value())?;
    // At most one entry per index (checked on ingress).
    Ok(entries.iter().any(|entry| {
        entry.index == *index
            && match &entry.values {
                IndexValues::Ore(cts) => test(cts),
                IndexValues::Tokens(_) => false,
            }
    }))
}

/// Whether some value lies within the bounds.
fn any_in_bounds<O: OreOrder>(
    cts: &[Vec<u8>],
    lower: &Option<CtBound>,
    upper: &Option<CtBound>,
) -> bool {
    cts.iter().any(|ct| ct_in_bounds::<O>(ct, lower, upper))
}

/// Key bounds of every posting of `token` in `index`.
fn token_bounds(index: &IndexId, token: &Token) -> ([u8; POSTING_KEY_LEN], [u8; POSTING_KEY_LEN]) {
    (
        layout::posting_key(index, token, 0),
        layout::posting_key(index, token, u64::MAX),
    )
}

/// Key bounds of every multi-valued mark of `index`.
fn multi_bounds(index: &IndexId) -> ([u8; MULTI_KEY_LEN], [u8; MULTI_KEY_LEN]) {
    (
        layout::multi_key(index, 0),
        layout::multi_key(index, u64::MAX),
    )
}

impl Window {
    fn new() -> Self {
        Window {
            buffer: VecDeque::new(),
            buffer_from: None,
            complete: false,
        }
    }

    /// Smallest candidate above `q`: from the buffer when it answers `q`,
    /// else from a new scan (`scan` offers every candidate of the leaf).
    fn seek(
        &mut self,
        q: Option<DocId>,
        scan: impl FnOnce(&mut WindowFill) -> Result<(), StoreError>,
    ) -> Result<Option<Cand>, StoreError> {
        if let Some(from) = self.buffer_from {
            if from <= q {
                while self.buffer.front().is_some_and(|c| Some(c.doc) <= q) {
                    self.buffer.pop_front();
                }
                if let Some(cand) = self.buffer.front() {
                    return Ok(Some(*cand));
                }
                if self.complete {
                    return Ok(None);
                }
            }
        }
        let mut fill = WindowFill {
            q,
            kept: BTreeSet::new(),
            complete: true,
        };
        scan(&mut fill)?;
        assert!(fill.kept.len() <= RANGE_CHUNK_DOCS_MAX);
        self.buffer = fill.kept.into_iter().collect();
        self.buffer_from = Some(q);
        self.complete = fill.complete;
        Ok(self.buffer.front().copied())
    }
}

impl WindowFill {
    /// Keeps `cand` if it is above the query and among the smallest.
    /// Duplicates (a doc under two tokens or two values) count once.
    fn offer(&mut self, cand: Cand) {
        if Some(cand.doc) <= self.q {
            return;
        }
        if self.kept.len() == RANGE_CHUNK_DOCS_MAX {
            // Full: a larger candidate is left out (so the window no longer
            // holds every match), a smaller one evicts the largest. Equal
            // to the largest is a duplicate.
            let Some(&last) = self.kept.last() else {
                return;
            };
            if cand >= last {
                self.complete &= cand == last;
                return;
            }
            if self.kept.insert(cand) {
                self.kept.pop_last();
                self.complete = false;
            }
            return;
        }
        self.kept.insert(cand);
    }
}

/// Offers every posting of `tokens` in `index`.
fn scan_tokens<O: OreOrder>(
    tables: &Tables<O>,
    index: &IndexId,
    tokens: &[Token],
    fill: &mut WindowFill,
) -> Result<(), StoreError> {
    for token in tokens {
        let (low, high) = token_bounds(index, token);
        for item in tables.postings.range::<&[u8]>(&low[..]..=&high[..])? {
            let (key, value) = item?;
            fill.offer(Cand {
                doc: layout::doc_id(value.value())?,
                row: layout::posting_row(key.value())?,
            });
        }
    }
    Ok(())
}

/// Offers every range posting of `index` within the bounds.
fn scan_range<O: OreOrder>(
    tables: &Tables<O>,
    index: &IndexId,
    lower: &Option<CtBound>,
    upper: &Option<CtBound>,
    fill: &mut WindowFill,
) -> Result<(), StoreError> {
    let (low, high) = range_bounds(index, lower, upper);
    for item in tables
        .range
        .range::<&[u8]>((as_slice_bound(&low), as_slice_bound(&high)))?
    {
        let (_, values) = item?;
        for value in values {
            let (row, doc) = layout::decode_range_value(value?.value())?;
            fill.offer(Cand { doc, row });
        }
    }
    Ok(())
}

/// Offers every multi-valued document of `index`.
fn scan_multi<O: OreOrder>(
    tables: &Tables<O>,
    index: &IndexId,
    fill: &mut WindowFill,
) -> Result<(), StoreError> {
    let (low, high) = multi_bounds(index);
    for item in tables.multi.range::<&[u8]>(&low[..]..=&high[..])? {
        let (key, value) = item?;
        let (_, row) = layout::split_multi_key(key.value())?;
        fill.offer(Cand {
            doc: layout::doc_id(value.value())?,
            row,
        });
    }
    Ok(())
}

impl Node {
    /// Range postings within a range leaf's bounds, counting at most
    /// `ESTIMATE_SCAN_MAX`.
    fn range_estimate<O: OreOrder>(ctx: &Ctx<O>, r: &RangeNode) -> Result<u64, StoreError> {
        let (low, high) = range_bounds(&r.index, &r.lower, &r.upper);
        let mut count = 0u64;
        for item in ctx
            .tables
            .range
            .range::<&[u8]>((as_slice_bound(&low), as_slice_bound(&high)))?
        {
            let (_, values) = item?;
            count += values.len();
            if count >= ESTIMATE_SCAN_MAX {
                return Ok(count);
            }
        }
        Ok(count)
    }

    /// Upper estimate of how many documents the node selects, counting at
    /// most `ESTIMATE_SCAN_MAX` postings per leaf.
    fn estimate<O: OreOrder>(&self, ctx: &Ctx<O>) -> Result<u64, StoreError> {
        Ok(match self {
            Node::Empty => 0,
            Node::All => u64::MAX,
            Node::Ids(ids) => ids.len() as u64,
            Node::Tokens(t) => {
                let mut count = 0u64;
                for token in &t.tokens {
                    let (low, high) = token_bounds(&t.index, token);
                    for item in ctx.tables.postings.range::<&[u8]>(&low[..]..=&high[..])? {
                        item?;
                        count += 1;
                        if count >= ESTIMATE_SCAN_MAX {
                            return Ok(count);
                        }
                    }
                }
                count
            }
            Node::Range(r) => Node::range_estimate(ctx, r)?,
            Node::Meet(m) => {
                let scanned = match &m.scan {
                    Some(scan) => Node::range_estimate(ctx, scan)?,
                    None => 0,
                };
                let (low, high) = multi_bounds(&m.index);
                let mut multi = 0u64;
                for item in ctx.tables.multi.range::<&[u8]>(&low[..]..=&high[..])? {
                    item?;
                    multi += 1;
                    if multi >= ESTIMATE_SCAN_MAX {
                        break;
                    }
                }
                scanned.saturating_add(multi)
            }
            Node::And { driver, .. } => driver.estimate(ctx)?,
            Node::Or(children) => {
                let mut sum = 0u64;
                for child in children {
                    sum = sum.saturating_add(child.node.estimate(ctx)?);
                }
                sum
            }
        })
    }

    /// Smallest matching document above `q`. Successive calls on one node
    /// pass non-decreasing `q` (the caches rely on it and reset otherwise).
    fn seek<O: OreOrder>(
        &mut self,
        ctx: &mut Ctx<O>,
        q: Option<DocId>,
    ) -> Result<Seek, StoreError> {
        match self {
            Node::Empty => Ok(Seek::End),
            Node::All => {
                let low = match &q {
                    Some(d) => Bound::Excluded(&d.0[..]),
                    None => Bound::Unbounded,
                };
                let mut range = ctx.tables.ids.range::<&[u8]>((low, Bound::Unbounded))?;
                match range.next() {
                    Some(item) => {
                        let (key, value) = item?;
                        let (row, _) = layout::decode_id_record(value.value())?;
                        Ok(Seek::Found(Cand {
                            doc: layout::doc_id(key.value())?,
                            row,
                        }))
                    }
                    None => Ok(Seek::End),
                }
            }
            Node::Ids(ids) => {
                let start = ids.partition_point(|id| Some(*id) <= q);
                for id in &ids[start..] {
                    if let Some(row) = layout::row_of(&ctx.tables.ids, id)? {
                        return Ok(Seek::Found(Cand { doc: *id, row }));
                    }
                    if !ctx.spend() {
                        return Ok(Seek::Paused(*id));
                    }
                }
                Ok(Seek::End)
            }
            Node::Tokens(t) => {
                let TokensNode {
                    index,
                    tokens,
                    window,
                } = t;
                let tables = &ctx.tables;
                let found = window.seek(q, |fill| scan_tokens(tables, index, tokens, fill))?;
                Ok(found.map_or(Seek::End, Seek::Found))
            }
            Node::Range(r) => r.seek(ctx, q),
            Node::Meet(m) => m.seek(ctx, q),
            Node::And { driver, filters } => {
                let mut cursor = q;
                // Every pass but the last rejects a candidate and spends one
                // unit of the page budget, which is at most
                // CANDIDATES_PER_PAGE_MAX.
                for _ in 0..=CANDIDATES_PER_PAGE_MAX {
                    let candidate = match driver.seek(ctx, cursor)? {
                        Seek::Found(cand) => cand,
                        other => return Ok(other),
                    };
                    let mut all = true;
                    for filter in filters.iter() {
                        if !filter.contains(ctx, &candidate)? {
                            all = false;
                            break;
                        }
                    }
                    if all {
                        return Ok(Seek::Found(candidate));
                    }
                    if !ctx.spend() {
                        return Ok(Seek::Paused(candidate.doc));
                    }
                    cursor = Some(candidate.doc);
                }
                Err(StoreError::Corrupt(
                    "the page budget did not stop a scan".into(),
                ))
            }
            Node::Or(children) => {
                let mut best: Option<Seek> = None;
                for child in children.iter_mut() {
                    let answer = match child.cached {
                        Some((asked, answer)) if asked <= q && answer.still_answers(q) => answer,
                        _ => child.node.seek(ctx, q)?,
                    };
                    child.cached = Some((q, answer));
                    if let Some(key) = answer.union_key() {
                        if best.and_then(|b| b.union_key()).is_none_or(|b| key < b) {
                            best = Some(answer);
                        }
                    }
                }
                Ok(best.unwrap_or(Seek::End))
            }
        }
    }

    /// Whether an existing document matches this node (point lookups only,
    /// by row).
    fn contains<O: OreOrder>(&self, ctx: &Ctx<O>, cand: &Cand) -> Result<bool, StoreError> {
        Ok(match self {
            Node::Empty => false,
            Node::All => true,
            Node::Ids(ids) => ids.binary_search(&cand.doc).is_ok(),
            Node::Tokens(t) => {
                for token in &t.tokens {
                    let key = layout::posting_key(&t.index, token, cand.row);
                    if let Some(guard) = ctx.tables.postings.get(&key[..])? {
                        if guard.value() != cand.doc.0 {
                            return Err(StoreError::Corrupt(format!(
                                "a posting of row {} names another document than {}",
                                cand.row, cand.doc
                            )));
                        }
                        return Ok(true);
                    }
                }
                false
            }
            Node::Range(r) => range_values_pass(&ctx.tables, cand.row, &r.index, |cts| {
                any_in_bounds::<O>(cts, &r.lower, &r.upper)
            })?,
            Node::Meet(m) => m.contains(&ctx.tables, cand.row)?,
            Node::And { driver, filters } => {
                if !driver.contains(ctx, cand)? {
                    return Ok(false);
                }
                for filter in filters {
                    if !filter.contains(ctx, cand)? {
                        return Ok(false);
                    }
                }
                true
            }
            Node::Or(children) => {
                for child in children {
                    if child.node.contains(ctx, cand)? {
                        return Ok(true);
                    }
                }
                false
            }
        })
    }
}

impl MeetNode {
    /// Whether the document at `row` has, for every merged range, a value
    /// within it.
    fn contains<O: OreOrder>(&self, tables: &Tables<O>, row: u64) -> Result<bool, StoreError> {
        meet_contains::<O>(tables, &self.index, &self.children, row)
    }

    /// Smallest match above `q`: the earlier of the intersection scan's and
    /// the multi-valued walk's answers (`Found` first on a tie, as in `Or`).
    fn seek<O: OreOrder>(
        &mut self,
        ctx: &mut Ctx<O>,
        q: Option<DocId>,
    ) -> Result<Seek, StoreError> {
        let scanned = match &mut self.scan {
            // The range leaf caches its own window.
            Some(scan) => scan.seek(ctx, q)?,
            None => Seek::End,
        };
        let multi = match self.multi_cached {
            Some((asked, answer)) if asked <= q && answer.still_answers(q) => answer,
            _ => self.seek_multi(ctx, q)?,
        };
        self.multi_cached = Some((q, multi));
        Ok(match (scanned.union_key(), multi.union_key()) {
            (None, _) => multi,
            (_, None) => scanned,
            (Some(a), Some(b)) => {
                if a <= b {
                    scanned
                } else {
                    multi
                }
            }
        })
    }

    /// First multi-valued document of the index above `q` that meets every
    /// child. Each rejection spends the page's budget, so the walk is
    /// bounded by `CANDIDATES_PER_PAGE_MAX` as well as by the table.
    fn seek_multi<O: OreOrder>(
        &mut self,
        ctx: &mut Ctx<O>,
        q: Option<DocId>,
    ) -> Result<Seek, StoreError> {
        let MeetNode {
            index,
            children,
            multi,
            ..
        } = self;
        let mut cursor = q;
        // Every pass but the last rejects a candidate and spends one unit
        // of the page budget, which is at most CANDIDATES_PER_PAGE_MAX.
        for _ in 0..=CANDIDATES_PER_PAGE_MAX {
            let tables = &ctx.tables;
            let Some(cand) = multi.seek(cursor, |fill| scan_multi(tables, index, fill))? else {
                return Ok(Seek::End);
            };
            if meet_contains::<O>(tables, index, children, cand.row)? {
                return Ok(Seek::Found(cand));
            }
            if !ctx.spend() {
                return Ok(Seek::Paused(cand.doc));
            }
            cursor = Some(cand.doc);
        }
        Err(StoreError::Corrupt(
            "the page budget did not stop a scan".into(),
        ))
    }
}

/// Whether the document at `row` has, for every range of `children`, a
/// value of `index` within it.
fn meet_contains<O: OreOrder>(
    tables: &Tables<O>,
    index: &IndexId,
    children: &[(Option<CtBound>, Option<CtBound>)],
    row: u64,
) -> Result<bool, StoreError> {
    range_values_pass(tables, row, index, |cts| {
        children
            .iter()
            .all(|(lower, upper)| any_in_bounds::<O>(cts, lower, upper))
    })
}

impl RangeNode {
    fn seek<O: OreOrder>(&mut self, ctx: &Ctx<O>, q: Option<DocId>) -> Result<Seek, StoreError> {
        let RangeNode {
            index,
            lower,
            upper,
            window,
        } = self;
        let tables = &ctx.tables;
        let found = window.seek(q, |fill| scan_range(tables, index, lower, upper, fill))?;
        Ok(found.map_or(Seek::End, Seek::Found))
    }
}
