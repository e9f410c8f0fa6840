//! Cursors that stream: an unsorted find reads node pages only as getMore
//! asks for them, and every document still arrives exactly once; a sorted
//! find is materialised (harness in `common`).

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use bson::{doc, Bson, Document};
use common::*;

/// Node pages hold up to 1000 documents (the client's page size).
const DOCS: i32 = 2500;

async fn seeded(server: &Server) -> Conn {
    let mut conn = Conn::open(server).await;
    let docs: Vec<Document> = (0..DOCS).map(|i| doc! {"_id": i, "n": i % 7}).collect();
    let reply = conn
        .command_with_sequence(doc! {"insert": "big", "$db": "s"}, "documents", &docs)
        .await;
    assert_ok(&reply);
    assert_eq!(reply.get_i32("n").unwrap(), DOCS);
    conn
}

/// Drains a cursor with getMore, returning every document.
async fn drain(conn: &mut Conn, first: &Document, batch: i32) -> Vec<Document> {
    let (docs, mut id, _) = cursor(first);
    let mut all: Vec<Document> = docs
        .iter()
        .map(|d| d.as_document().unwrap().clone())
        .collect();
    while id != 0 {
        let more = conn
            .command(doc! {"getMore": id, "collection": "big", "batchSize": batch, "$db": "s"})
            .await;
        let (docs, next, _) = cursor(&more);
        assert!(docs.len() <= batch as usize);
        all.extend(docs.iter().map(|d| d.as_document().unwrap().clone()));
        id = next;
    }
    all
}

#[tokio::test]
async fn unsorted_finds_read_pages_as_asked() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    let before = server.pages.load(Ordering::Relaxed);
    let first = conn
        .command(doc! {"find": "big", "$db": "s", "batchSize": 10})
        .await;
    let (batch, id, _) = cursor(&first);
    assert_eq!(batch.len(), 10);
    assert_ne!(id, 0);
    // One node page answered the first batch; the others wait.
    assert_eq!(server.pages.load(Ordering::Relaxed) - before, 1);
    let all = drain(&mut conn, &first, 400).await;
    assert_eq!(server.pages.load(Ordering::Relaxed) - before, 3);
    let ids: BTreeSet<i32> = all.iter().map(|d| d.get_i32("_id").unwrap()).collect();
    assert_eq!(all.len(), DOCS as usize);
    assert_eq!(ids.len(), DOCS as usize, "every document exactly once");
}

#[tokio::test]
async fn skip_limit_filter_and_projection_while_streaming() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    let first = conn
        .command(
            doc! {"find": "big", "$db": "s", "filter": {"n": 3}, "skip": 5,
            "limit": 300, "batchSize": 50, "projection": {"n": 0}},
        )
        .await;
    let all = drain(&mut conn, &first, 70).await;
    assert_eq!(all.len(), 300);
    assert!(all.iter().all(|d| d.keys().eq(["_id"])));
    let ids: BTreeSet<i32> = all.iter().map(|d| d.get_i32("_id").unwrap()).collect();
    assert_eq!(ids.len(), 300);
    assert!(ids.iter().all(|i| i % 7 == 3));
    // 357 documents match; 5 skipped and 300 taken fit inside them.
    let reply = conn
        .command(doc! {"count": "big", "$db": "s", "query": {"n": 3}})
        .await;
    assert_eq!(reply.get_i32("n").unwrap(), 357);
}

#[tokio::test]
async fn sorted_finds_and_killed_cursors() {
    let server = start().await;
    let mut conn = seeded(&server).await;
    let first = conn
        .command(doc! {"find": "big", "$db": "s", "sort": {"_id": -1}, "batchSize": 100})
        .await;
    let all = drain(&mut conn, &first, 1000).await;
    let ids: Vec<i32> = all.iter().map(|d| d.get_i32("_id").unwrap()).collect();
    assert_eq!(ids, (0..DOCS).rev().collect::<Vec<_>>());

    // A streaming cursor that is killed reads nothing more.
    let first = conn
        .command(doc! {"find": "big", "$db": "s", "batchSize": 1})
        .await;
    let (_, id, _) = cursor(&first);
    let pages = server.pages.load(Ordering::Relaxed);
    let reply = conn
        .command(doc! {"killCursors": "big", "cursors": [id], "$db": "s"})
        .await;
    assert_eq!(
        reply.get_array("cursorsKilled").unwrap(),
        &vec![Bson::Int64(id)]
    );
    let reply = conn
        .command(doc! {"getMore": id, "collection": "big", "$db": "s"})
        .await;
    assert_eq!(code(&reply), 43);
    assert_eq!(server.pages.load(Ordering::Relaxed), pages);
}
