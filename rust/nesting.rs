// SPDX-License-Identifier: GPL-2.0

//! Queues watching queues.
//!
//! A queue can watch another queue with `KEVENT_POLL`, as epoll can watch epoll. A wake-up then
//! travels up the chain: the watched queue wakes its `poll_wait`, whose entry makes the watching
//! queue's registration ready, which wakes that queue's `poll_wait` in turn, inside the first
//! one's lock. So the links must never form a cycle (a wake-up would take a lock it already
//! holds: the guest hung on exactly that), and chains must stay short (every level nests one
//! more lock and a few more stack frames in interrupt context). Every link is recorded in one
//! graph under one module-wide mutex, and an ADD that would close a cycle, or make a chain of
//! more than `KEVENT_MAX_NESTS` links, fails with `ELOOP`, as epoll's loop check does.
//!
//! Each queue knows the longest chain of links below it (`down`) and above it (`up`). Both are
//! kept exact as links come and go, so checking a new link costs two reads plus a walk for the
//! cycle test that only enters queues from which the watcher could be reached. `down` is also
//! the lockdep nesting level of the queue's `poll_wait` (see `Queue::wake_waiters`), read
//! without the mutex: a wake-up racing with a change of the graph may use the old level.
//!
//! Lock order: `Queue::registrations`, then [`Nesting::graph`]. Nothing else is taken under
//! the graph mutex, and it is never taken from a wake-up.

use crate::{
    compat::{errno, global::ModuleGlobal, uapi, user_gfp},
    queue::Queue,
};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::{
    error::code::*,
    new_mutex,
    prelude::*,
    rbtree::RBTree,
    sync::{Arc, LockedBy, Mutex},
};

/// The graph's lock and the generation counter of its walks.
pub(crate) struct Graph {
    /// Bumped by every cycle check; a queue marked with the current value was visited.
    generation: u64,
}

/// The module-wide graph of queues watching queues.
#[pin_data]
pub(crate) struct Nesting {
    #[pin]
    graph: Mutex<Graph>,
}

/// The graph, published while the module is loaded.
pub(crate) static NESTING: ModuleGlobal<Nesting> = ModuleGlobal::new();

impl Nesting {
    /// Creates an empty graph.
    pub(crate) fn new() -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                graph <- new_mutex!(Graph { generation: 0 }, "Nesting::graph"),
            }),
            GFP_KERNEL,
        )
    }
}

/// The queues linked to one queue on one side, by address, with the number of links to each
/// (a queue may watch another through several descriptors).
type Linked = RBTree<usize, (Arc<Queue>, u32)>;

/// The links of one queue.
pub(crate) struct Links {
    /// Queues watching this one.
    parents: Linked,
    /// Queues this one watches.
    children: Linked,
}

/// A queue's place in the graph.
///
/// # Invariants
///
/// Under the graph mutex, `down` is the number of links of the longest chain below the queue
/// and `up` the number of links of the longest chain above it; neither exceeds
/// `KEVENT_MAX_NESTS`, and the links form no cycle.
pub(crate) struct Node {
    links: LockedBy<Links, Graph>,
    down: AtomicU32,
    up: AtomicU32,
    /// Generation of the last cycle check that visited the queue.
    mark: AtomicU64,
}

impl Node {
    /// A queue without links. `ENODEV` if the module is going away.
    pub(crate) fn new() -> Result<Self> {
        let nesting = NESTING.get().ok_or(ENODEV)?;
        Ok(Self {
            links: LockedBy::new(
                &nesting.graph,
                Links {
                    parents: RBTree::new(),
                    children: RBTree::new(),
                },
            ),
            down: AtomicU32::new(0),
            up: AtomicU32::new(0),
            mark: AtomicU64::new(0),
        })
    }

    /// The lockdep nesting level of the queue's wake-ups: the longest chain below it.
    pub(crate) fn level(&self) -> u32 {
        self.down.load(Ordering::Relaxed)
    }

    fn down(&self) -> u32 {
        self.down.load(Ordering::Relaxed)
    }

    fn up(&self) -> u32 {
        self.up.load(Ordering::Relaxed)
    }
}

/// Records that `parent` watches `child`. Fails with `ELOOP` if `child` already reaches
/// `parent` or the chain through the new link would be too long, and `ENOMEM`.
pub(crate) fn link(parent: &Arc<Queue>, child: &Arc<Queue>) -> Result {
    let nesting = NESTING.get().ok_or(ENODEV)?;
    let mut graph = nesting.graph.lock();
    if parent.nest.up() + 1 + child.nest.down() > uapi::MAX_NESTS {
        return Err(errno::eloop());
    }
    graph.generation = graph.generation.wrapping_add(1);
    let generation = graph.generation;
    if reaches(&graph, generation, child, parent) {
        return Err(errno::eloop());
    }
    add_one(
        &mut parent.nest.links.access_mut(&mut graph).children,
        child,
    )?;
    if let Err(e) = add_one(&mut child.nest.links.access_mut(&mut graph).parents, parent) {
        let undone = take_one(
            &mut parent.nest.links.access_mut(&mut graph).children,
            child,
        );
        drop(graph);
        drop(undone);
        return Err(e);
    }
    update(&graph, parent, Side::Down);
    update(&graph, child, Side::Up);
    Ok(())
}

/// Removes one link recorded by [`link`] for `parent` watching `child`.
pub(crate) fn unlink(parent: &Arc<Queue>, child: &Arc<Queue>) {
    let Some(nesting) = NESTING.get() else {
        return;
    };
    // The removed references are dropped after the mutex is released: a queue's last
    // reference may go with them.
    let (old_child, old_parent) = {
        let mut graph = nesting.graph.lock();
        let old_child = take_one(
            &mut parent.nest.links.access_mut(&mut graph).children,
            child,
        );
        let old_parent = take_one(&mut child.nest.links.access_mut(&mut graph).parents, parent);
        update(&graph, parent, Side::Down);
        update(&graph, child, Side::Up);
        (old_child, old_parent)
    };
    drop(old_child);
    drop(old_parent);
}

/// Counts one more link to `queue` in `side`.
fn add_one(side: &mut Linked, queue: &Arc<Queue>) -> Result {
    let key = queue_key(queue);
    if let Some((_, count)) = side.get_mut(&key) {
        *count += 1;
        return Ok(());
    }
    side.try_create_and_insert(key, (queue.clone(), 1), user_gfp())?;
    Ok(())
}

/// Counts one link to `queue` less in `side`; returns the reference to drop (after the graph
/// mutex is released) when it was the last.
fn take_one(side: &mut Linked, queue: &Arc<Queue>) -> Option<Arc<Queue>> {
    let key = queue_key(queue);
    let (_, count) = side.get_mut(&key)?;
    *count -= 1;
    if *count > 0 {
        return None;
    }
    side.remove(&key).map(|(queue, _)| queue)
}

/// The key of a queue in [`Linked`]: its address, which is stable while it is linked.
fn queue_key(queue: &Arc<Queue>) -> usize {
    &**queue as *const Queue as usize
}

/// Whether `target` can be reached from `from` by following links downwards. Only queues
/// whose longest chain below is longer than `target`'s can lead to it, so the walk skips the
/// others; each queue is visited once per `generation`.
fn reaches(graph: &Graph, generation: u64, from: &Arc<Queue>, target: &Arc<Queue>) -> bool {
    if Arc::ptr_eq(from, target) {
        return true;
    }
    if from.nest.down() <= target.nest.down() {
        return false;
    }
    if from.nest.mark.swap(generation, Ordering::Relaxed) == generation {
        return false;
    }
    from.nest
        .links
        .access(graph)
        .children
        .values()
        .any(|(child, _)| reaches(graph, generation, child, target))
}

/// Which way [`update`] measures chains.
#[derive(Clone, Copy)]
enum Side {
    /// The longest chain below a queue (`down`), through the queues it watches.
    Down,
    /// The longest chain above a queue (`up`), through the queues watching it.
    Up,
}

impl Side {
    /// The level this side keeps for `node`.
    fn level(self, node: &Node) -> &AtomicU32 {
        match self {
            Side::Down => &node.down,
            Side::Up => &node.up,
        }
    }

    /// The queues the chains go through, and the queues whose level depends on this one.
    fn split(self, links: &Links) -> (&Linked, &Linked) {
        match self {
            Side::Down => (&links.children, &links.parents),
            Side::Up => (&links.parents, &links.children),
        }
    }
}

/// Recomputes `queue`'s level on `side` from its neighbours, and then theirs that depend on it,
/// as far as it changes. The recursion is as deep as the longest chain.
fn update(graph: &Graph, queue: &Arc<Queue>, side: Side) {
    let (through, dependents) = side.split(queue.nest.links.access(graph));
    let level = through
        .values()
        .map(|(q, _)| side.level(&q.nest).load(Ordering::Relaxed) + 1)
        .max()
        .unwrap_or(0);
    if side.level(&queue.nest).swap(level, Ordering::Relaxed) == level {
        return;
    }
    for (q, _) in dependents.values() {
        update(graph, q, side);
    }
}
