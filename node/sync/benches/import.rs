//! Import speed without the network: builds a certified `local` chain (4 validators, 3
//! signatures per certificate) of `blocks` blocks holding `transfers` transfers each, then imports
//! it into a fresh database and times the two stages of catch-up apart:
//!
//! - stage 1, `check_signatures` per 512-block segment (certificates + transactions, spread
//!   over the cores);
//! - stage 2, `Importer::import` of every block in order, one fsync per segment.
//!
//! Catch-up runs the two at once (stage 1 of the next segments beside stage 2 of the current).
//!
//! ```sh
//! cargo bench -p gridchain-sync --features fixtures --bench import -- [blocks] [transfers]
//! ```
#![allow(clippy::unwrap_used)]

use gridchain_sync::fixtures::{final_blocks, grow, importer, node};
use gridchain_sync::import::{check_signatures, KnownSigners};
use std::time::Instant;

const SEGMENT: u64 = 512;

fn main() {
    // `cargo bench` passes `--bench`; numbers are ours.
    let numbers: Vec<u64> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let blocks = numbers.first().copied().unwrap_or(3_000);
    let transfers = numbers.get(1).copied().unwrap_or(7);

    let source = node();
    let started = Instant::now();
    grow(&source, blocks, transfers);
    println!(
        "built {blocks} certified blocks of {transfers} transfers in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let target = node();
    let importer = importer(&target);
    let mut stage1 = 0.0;
    let mut stage2 = 0.0;
    let mut first = 1;
    while first <= blocks {
        let last = (first + SEGMENT - 1).min(blocks);
        let segment = final_blocks(&source, first, last);
        let started = Instant::now();
        let known = KnownSigners::at_best(&target.storage).unwrap();
        let checked = check_signatures(target.chain, &known, segment).unwrap();
        stage1 += started.elapsed().as_secs_f64();
        let started = Instant::now();
        for block in checked {
            importer.import(block).unwrap();
        }
        target.storage.sync_to_disk().unwrap();
        stage2 += started.elapsed().as_secs_f64();
        first = last + 1;
    }
    let n = blocks as f64;
    println!(
        "stage 1 (signatures, all cores): {:.2} s, {:.0} blocks/s, {:.0} µs/block",
        stage1,
        n / stage1,
        stage1 * 1e6 / n
    );
    println!(
        "stage 2 (execute + commit, one core): {:.2} s, {:.0} blocks/s, {:.0} µs/block",
        stage2,
        n / stage2,
        stage2 * 1e6 / n
    );
    println!(
        "one after the other: {:.0} blocks/s ({:.0} transfers/s)",
        n / (stage1 + stage2),
        n * transfers as f64 / (stage1 + stage2)
    );
}
