//! Resume beyond the ring: the hub falls back to the store for gaps older than its ring, and
//! says plainly (`complete: false` + `gap`) when the store no longer holds what was missed.
//! Also: two hubs on one store deliver each other's messages (fan-out only from the store).

mod common;

use std::sync::Arc;

use common::{session, Tab, TestHub};
use natter_hub::store::memory::MemoryStore;
use natter_hub::Config;
use natter_protocol::{Gap, ServerMessage};

/// Sends `n` messages and waits for each reply: 2n seqs in the conversation.
async fn talk(tab: &mut Tab, prefix: &str, n: usize) {
    for i in 0..n {
        let id = format!("{prefix}{i}");
        tab.say(&id, "hello").await;
        tab.until(|m| match m {
            ServerMessage::Bot(b) if b.reply_to.as_deref() == Some(id.as_str()) => Some(()),
            _ => None,
        })
        .await;
    }
}

fn seqs(h: &natter_protocol::History) -> Vec<u64> {
    h.messages.iter().filter_map(ServerMessage::seq).collect()
}

#[tokio::test]
async fn gap_older_than_the_ring_is_served_from_the_store() {
    let mut config = Config::for_tests();
    config.ring_size = 3;
    let hub = TestHub::with(config).await;
    let sid = session("ring");
    let (mut tab, _) = hub.tab(&sid).await;
    talk(&mut tab, "m", 4).await; // seqs 1..=8; the ring holds 6..=8
    let mut again = Tab::connect(&hub.ws_url(&sid, "&after=1")).await;
    let h = again.expect_history().await;
    assert_eq!(seqs(&h), (2..=8).collect::<Vec<_>>());
    assert!(h.complete && h.gap.is_none() && h.last_seq == 8, "{h:?}");
    // And from the ring alone.
    let mut again = Tab::connect(&hub.ws_url(&sid, "&after=6")).await;
    assert_eq!(seqs(&again.expect_history().await), [7, 8]);
}

#[tokio::test]
async fn gap_older_than_what_exists_is_reported() {
    let mut config = Config::for_tests();
    config.ring_size = 2;
    let hub = TestHub::with_store(config, Arc::new(MemoryStore::with_retention(4))).await;
    let sid = session("gap");
    let (mut tab, _) = hub.tab(&sid).await;
    talk(&mut tab, "g", 4).await; // seqs 1..=8; the store keeps 5..=8, the ring 7..=8
    let mut again = Tab::connect(&hub.ws_url(&sid, "&after=1")).await;
    let h = again.expect_history().await;
    assert_eq!(seqs(&h), [5, 6, 7, 8]);
    assert!(!h.complete, "{h:?}");
    assert_eq!(h.gap, Some(Gap { from: 2, to: 4 }));
    assert_eq!(h.last_seq, 8);
    again.ping_works().await;
}

#[tokio::test]
async fn more_missed_than_one_resume_replays_is_a_gap_too() {
    let mut config = Config::for_tests();
    config.ring_size = 2;
    config.max_replay = 3;
    let hub = TestHub::with(config).await;
    let sid = session("replay");
    let (mut tab, _) = hub.tab(&sid).await;
    talk(&mut tab, "x", 4).await;
    let mut again = Tab::connect(&hub.ws_url(&sid, "&after=0")).await;
    let h = again.expect_history().await;
    assert_eq!(seqs(&h), [6, 7, 8], "the newest ones");
    assert_eq!(h.gap, Some(Gap { from: 1, to: 5 }));
    assert!(!h.complete);
}

#[tokio::test]
async fn two_hubs_on_one_store_share_conversations() {
    let store = Arc::new(MemoryStore::new());
    let one = TestHub::with_store(Config::for_tests(), store.clone()).await;
    let two = TestHub::with_store(Config::for_tests(), store.clone()).await;
    let sid = session("shared");
    let (mut a, _) = one.tab(&sid).await;
    let (mut b, _) = two.tab(&sid).await;
    a.say("h1", "hello").await;
    // The tab on the other hub gets the message through the store's delivery stream, once.
    let m = b.recv_data().await;
    assert!(matches!(&m, ServerMessage::User(u) if u.id == "h1" && u.seq == 1), "{m:?}");
    // Each hub runs a reply engine for its own posts only: one reply.
    let m = b.recv_data().await;
    assert!(matches!(&m, ServerMessage::Bot(r) if r.seq == 2), "{m:?}");
    b.ping_works().await;
    // A cold hub resumes from the store.
    let three = TestHub::with_store(Config::for_tests(), store).await;
    let mut c = Tab::connect(&three.ws_url(&sid, "&after=1")).await;
    assert_eq!(seqs(&c.expect_history().await), [2]);
}
