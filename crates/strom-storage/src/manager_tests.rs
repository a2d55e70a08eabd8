//! Tests of the log manager: discovery, checkpoints, the clean-shutdown marker, topic ids,
//! deletion and placement across log dirs.

use std::fs;

use super::*;
use crate::checkpoint;
use crate::test_util::batch;

const TS: i64 = 1_700_000_000_000;

fn manager(dirs: &[&Path]) -> LogManager {
    LogManager::open(
        LogManagerConfig {
            log_dirs: dirs.iter().map(|d| d.to_path_buf()).collect(),
        },
        &|_| small_config(),
    )
    .unwrap()
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1000,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

fn append_n(log: &Log, n: usize) {
    for _ in 0..n {
        let b = batch(2, 50, TS);
        log.append(&b, 0, None).unwrap();
    }
}

#[test]
fn dir_names_split_at_the_last_dash() {
    assert_eq!(
        parse_dir_name("my-topic-12"),
        Some(TopicPartition::new("my-topic", 12))
    );
    assert_eq!(parse_dir_name("t-0"), Some(TopicPartition::new("t", 0)));
    assert_eq!(parse_dir_name("t--1"), Some(TopicPartition::new("t-", 1)));
    for bad in [
        "-0",
        "topic-",
        "topic",
        "topic-x",
        "topic-+1",
        "t-0.abc-delete",
    ] {
        assert_eq!(parse_dir_name(bad), None, "{bad}");
    }
}

#[test]
fn clean_restart_keeps_logs_offsets_and_topic_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (TopicPartition::new("a", 0), TopicPartition::new("b-x", 3));
    let (id_a, id_b) = (Uuid::new_v4(), Uuid::new_v4());
    {
        let m = manager(&[dir.path()]);
        assert!(!m.had_clean_shutdown(), "a fresh dir has no marker");
        append_n(&m.get_or_create(&a, id_a, small_config()).unwrap(), 10);
        append_n(&m.get_or_create(&b, id_b, small_config()).unwrap(), 3);
        assert!(dir.path().join("a-0/partition.metadata").exists());
        m.shutdown().unwrap();
        assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    }
    let rp = fs::read_to_string(dir.path().join(RECOVERY_POINT_CHECKPOINT)).unwrap();
    assert_eq!(rp, "0\n2\na 0 20\nb-x 3 6\n");
    let m = manager(&[dir.path()]);
    assert!(m.had_clean_shutdown());
    assert!(
        !dir.path().join(CLEAN_SHUTDOWN_FILE).exists(),
        "marker removed at start"
    );
    assert_eq!(m.logs().len(), 2);
    assert_eq!(m.get(&a).unwrap().log_end_offset(), 20);
    assert_eq!(m.get(&b).unwrap().log_end_offset(), 6);
    assert_eq!(m.topic_id(&a), Some(id_a));
    assert_eq!(m.topic_id(&b), Some(id_b));
    // Same id: the same log comes back.
    let again = m.get_or_create(&a, id_a, small_config()).unwrap();
    assert!(Arc::ptr_eq(&again, &m.get(&a).unwrap()));
}

#[test]
fn a_crash_is_noticed_and_recovers_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("t", 0);
    {
        let m = manager(&[dir.path()]);
        let log = m
            .get_or_create(&tp, Uuid::new_v4(), small_config())
            .unwrap();
        append_n(&log, 20);
        m.checkpoint().unwrap();
        // checkpoint() flushed the rolled segments first.
        let active = log.recovery_point();
        assert!(active > 0);
        let rp = checkpoint::read_offsets(&dir.path().join(RECOVERY_POINT_CHECKPOINT)).unwrap();
        assert_eq!(rp.get(&tp), Some(&active));
        // No shutdown: the process dies here.
    }
    // Tear the last batch.
    let log_dir = dir.path().join("t-0");
    let mut segments: Vec<_> = fs::read_dir(&log_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    let last = segments.last().unwrap();
    let len = fs::metadata(last).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let m = manager(&[dir.path()]);
    assert!(!m.had_clean_shutdown());
    assert_eq!(m.get(&tp).unwrap().log_end_offset(), 38);
}

#[test]
fn delete_then_recreate_with_a_new_topic_id_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("t", 1);
    let m = manager(&[dir.path()]);
    let old = m
        .get_or_create(&tp, Uuid::new_v4(), small_config())
        .unwrap();
    append_n(&old, 5);
    m.delete(&tp).unwrap();
    assert!(m.get(&tp).is_none());
    assert!(!dir.path().join("t-1").exists());
    assert!(fs::read_dir(dir.path()).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with("-delete")
    }));
    assert!(matches!(
        old.append(&batch(1, 1, TS), 0, None),
        Err(StorageError::Closed(_))
    ));
    m.delete(&tp).unwrap(); // idempotent
    let new_id = Uuid::new_v4();
    let new = m.get_or_create(&tp, new_id, small_config()).unwrap();
    assert_eq!(new.log_end_offset(), 0);
    assert_eq!(m.topic_id(&tp), Some(new_id));
}

#[test]
fn a_log_left_by_a_deleted_topic_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("t", 0);
    {
        let m = manager(&[dir.path()]);
        append_n(
            &m.get_or_create(&tp, Uuid::new_v4(), small_config())
                .unwrap(),
            5,
        );
        m.shutdown().unwrap();
    }
    let m = manager(&[dir.path()]);
    assert_eq!(m.get(&tp).unwrap().log_end_offset(), 10);
    let new_id = Uuid::new_v4();
    let log = m.get_or_create(&tp, new_id, small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(partition_metadata::read(&log.dir()).unwrap(), Some(new_id));
}

#[test]
fn a_log_without_partition_metadata_is_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("t", 0);
    let log = Log::open(
        &dir.path().join("t-0"),
        tp.clone(),
        small_config(),
        0,
        0,
        true,
    )
    .unwrap();
    append_n(&log, 2);
    log.close().unwrap();
    let m = manager(&[dir.path()]);
    assert_eq!(m.topic_id(&tp), None);
    let id = Uuid::new_v4();
    assert_eq!(
        m.get_or_create(&tp, id, small_config())
            .unwrap()
            .log_end_offset(),
        4
    );
    assert_eq!(m.topic_id(&tp), Some(id));
    assert_eq!(
        partition_metadata::read(&dir.path().join("t-0")).unwrap(),
        Some(id)
    );
}

#[test]
fn special_directories_are_skipped_or_removed() {
    let dir = tempfile::tempdir().unwrap();
    let leftover = dir
        .path()
        .join("t-0.0123456789abcdef0123456789abcdef-delete");
    fs::create_dir_all(&leftover).unwrap();
    fs::write(leftover.join("00000000000000000000.log"), b"junk").unwrap();
    let metadata_log = dir.path().join("__cluster_metadata-0");
    fs::create_dir_all(&metadata_log).unwrap();
    fs::write(metadata_log.join("00000000000000000000.log"), b"raft").unwrap();
    fs::create_dir_all(dir.path().join("not a log")).unwrap();
    fs::create_dir_all(dir.path().join("t-0-future")).unwrap();
    fs::write(dir.path().join("stray-file-0"), b"").unwrap();
    let m = manager(&[dir.path()]);
    assert!(!leftover.exists());
    assert!(metadata_log.join("00000000000000000000.log").exists());
    assert!(m.logs().is_empty());
    assert!(matches!(
        m.get_or_create(
            &TopicPartition::new("__cluster_metadata", 0),
            Uuid::new_v4(),
            small_config()
        ),
        Err(StorageError::InvalidArgument(_))
    ));
}

#[test]
fn new_logs_go_to_the_dir_with_the_fewest() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = manager(&[d1.path(), d2.path()]);
    for p in 0..4 {
        m.get_or_create(&TopicPartition::new("t", p), Uuid::new_v4(), small_config())
            .unwrap();
    }
    let count = |d: &Path| {
        fs::read_dir(d)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count()
    };
    assert_eq!((count(d1.path()), count(d2.path())), (2, 2));
    m.shutdown().unwrap();
    // Each dir checkpoints only its own logs, and the manager finds them all again.
    let rp1 = checkpoint::read_offsets(&d1.path().join(RECOVERY_POINT_CHECKPOINT)).unwrap();
    assert_eq!(rp1.len(), 2);
    let m = manager(&[d1.path(), d2.path()]);
    assert_eq!(m.logs().len(), 4);
    assert!(m.had_clean_shutdown());
}

#[test]
fn the_same_partition_in_two_dirs_is_an_error() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fs::create_dir_all(d1.path().join("t-0")).unwrap();
    fs::create_dir_all(d2.path().join("t-0")).unwrap();
    let err = LogManager::open(
        LogManagerConfig {
            log_dirs: vec![d1.path().to_path_buf(), d2.path().to_path_buf()],
        },
        &|_| LogConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err:?}");
}

#[test]
fn an_unreadable_checkpoint_means_full_recovery_not_failure() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("t", 0);
    {
        let m = manager(&[dir.path()]);
        append_n(
            &m.get_or_create(&tp, Uuid::new_v4(), small_config())
                .unwrap(),
            4,
        );
        m.shutdown().unwrap();
    }
    fs::write(dir.path().join(RECOVERY_POINT_CHECKPOINT), "garbage").unwrap();
    fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_FILE)).unwrap();
    let m = manager(&[dir.path()]);
    assert_eq!(m.get(&tp).unwrap().log_end_offset(), 8);
}

#[test]
fn retention_across_logs_checkpoints_the_moved_log_start_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("r", 0);
    let m = manager(&[dir.path()]);
    let log = m
        .get_or_create(
            &tp,
            Uuid::new_v4(),
            LogConfig {
                retention_ms: 1000,
                ..small_config()
            },
        )
        .unwrap();
    append_n(&log, 20);
    let deleted = m.enforce_retention(TS + 2000);
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].topic_partition, tp);
    // Everything expired: the log rolled and its start is the end.
    assert_eq!(log.log_start_offset(), 40);
    // The start equals the first segment's base: no checkpoint entry is needed for it.
    let offsets = checkpoint::read_offsets(&dir.path().join(LOG_START_OFFSET_CHECKPOINT)).unwrap();
    assert!(offsets.is_empty());
    assert!(m.delete_pending_files(TS + 2000) == 0);
    assert!(m.delete_pending_files(i64::MAX) > 0);
}

#[test]
fn delete_records_is_checkpointed_and_survives_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("dr", 0);
    {
        let m = manager(&[dir.path()]);
        let log = m
            .get_or_create(&tp, Uuid::new_v4(), small_config())
            .unwrap();
        append_n(&log, 10);
        assert_eq!(m.delete_records(&tp, 7).unwrap(), 7);
        let offsets =
            checkpoint::read_offsets(&dir.path().join(LOG_START_OFFSET_CHECKPOINT)).unwrap();
        assert_eq!(offsets.get(&tp), Some(&7));
        assert!(matches!(
            m.delete_records(&tp, 100),
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        // A crash: no shutdown.
    }
    let m = manager(&[dir.path()]);
    let log = m.get(&tp).unwrap();
    assert_eq!(log.log_start_offset(), 7);
    assert!(matches!(
        log.read(6, 1000, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn describe_log_dirs_reports_space_and_partition_sizes() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m = manager(&[d1.path(), d2.path()]);
    let a = m
        .get_or_create(&TopicPartition::new("a", 0), Uuid::new_v4(), small_config())
        .unwrap();
    let b = m
        .get_or_create(&TopicPartition::new("b", 0), Uuid::new_v4(), small_config())
        .unwrap();
    append_n(&a, 3);
    let described = m.describe_log_dirs();
    assert_eq!(described.len(), 2);
    for d in &described {
        assert!(d.error.is_none());
        assert!(d.total_bytes > 0 && d.usable_bytes > 0 && d.usable_bytes <= d.total_bytes);
        assert_eq!(d.partitions.len(), 1);
        let p = &d.partitions[0];
        assert_eq!((p.offset_lag, p.is_future), (0, false));
        let log = if p.topic_partition.topic == "a" {
            &a
        } else {
            &b
        };
        assert_eq!(p.size_bytes, log.size_in_bytes());
    }
    let sizes: Vec<u64> = described
        .iter()
        .map(|d| d.partitions[0].size_bytes)
        .collect();
    assert!(sizes.contains(&0) && sizes.iter().any(|&s| s > 0));
}

#[test]
fn a_failed_dir_goes_offline_alone_and_is_recovered_at_the_next_start() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ta, tb) = (TopicPartition::new("a", 0), TopicPartition::new("b", 0));
    {
        let m = manager(&[d1.path(), d2.path()]);
        let a = m
            .get_or_create(&ta, Uuid::new_v4(), small_config())
            .unwrap();
        let b = m
            .get_or_create(&tb, Uuid::new_v4(), small_config())
            .unwrap();
        append_n(&a, 2);
        append_n(&b, 2);
        a.health()
            .inject_write_failure
            .store(true, std::sync::atomic::Ordering::Release);
        let err = a.append(&batch(2, 50, TS), 0, None).unwrap_err();
        assert_eq!(
            err.error_code(),
            strom_protocol::ErrorCode::KafkaStorageError
        );
        // Every log of that dir is offline; the other dir works.
        assert!(matches!(
            a.read(0, 100, i64::MAX, true),
            Err(StorageError::LogDirOffline(_))
        ));
        append_n(&b, 2);
        assert!(
            !b.read(0, 10_000, i64::MAX, true)
                .unwrap()
                .records
                .is_empty()
        );
        assert_eq!(m.offline_log_dirs(), [d1.path().to_path_buf()]);
        let described = m.describe_log_dirs();
        let offline = described.iter().find(|d| d.path == d1.path()).unwrap();
        assert!(
            offline
                .error
                .as_ref()
                .is_some_and(|e| e.error_code() == strom_protocol::ErrorCode::KafkaStorageError)
        );
        assert!(offline.partitions.is_empty());
        assert_eq!(offline.total_bytes, -1);
        // New logs go to the online dir.
        let c = m
            .get_or_create(&TopicPartition::new("c", 0), Uuid::new_v4(), small_config())
            .unwrap();
        assert!(c.dir().starts_with(d2.path()));
        // Shutdown leaves no clean-shutdown marker in the failed dir.
        assert!(m.shutdown().is_err() || !d1.path().join(CLEAN_SHUTDOWN_FILE).exists());
        assert!(!d1.path().join(CLEAN_SHUTDOWN_FILE).exists());
        assert!(d2.path().join(CLEAN_SHUTDOWN_FILE).exists());
    }
    let m = manager(&[d1.path(), d2.path()]);
    assert!(m.offline_log_dirs().is_empty());
    assert_eq!(m.get(&ta).unwrap().log_end_offset(), 4);
    assert_eq!(m.get(&tb).unwrap().log_end_offset(), 8);
}

/// A log dir on a 2 MiB tmpfs: the disk really fills up. Needs root (mount); skipped otherwise.
#[test]
fn a_full_disk_leaves_no_partial_batch_and_takes_only_its_dir_offline() {
    let mount_point = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(mount_point.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipping: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(mount_point.path());
    let small = mount_point.path().join("data");
    let other = tempfile::tempdir().unwrap();
    let (ta, tb) = (
        TopicPartition::new("full", 0),
        TopicPartition::new("fine", 0),
    );
    let config = LogConfig {
        segment_bytes: 64 << 20,
        ..LogConfig::default()
    };
    let m = manager(&[small.as_path(), other.path()]);
    let a = m
        .get_or_create(&ta, Uuid::new_v4(), config.clone())
        .unwrap();
    assert!(a.dir().starts_with(&small));
    let b = m
        .get_or_create(&tb, Uuid::new_v4(), config.clone())
        .unwrap();
    let big = batch(4, 10_000, TS);
    let mut appended = 0;
    let err = loop {
        match a.append(&big, 0, None) {
            Ok(_) => appended += 1,
            Err(e) => break e,
        }
        assert!(appended < 1000, "the tmpfs never filled up");
    };
    assert!(appended > 10);
    assert_eq!(
        err.error_code(),
        strom_protocol::ErrorCode::KafkaStorageError
    );
    let leo = a.log_end_offset();
    let segment = a.dir().join(format!("{:020}.log", 0));
    assert_eq!(
        fs::metadata(&segment).unwrap().len(),
        (appended * big.len()) as u64
    );
    assert!(matches!(
        a.append(&batch(1, 1, TS), 0, None),
        Err(StorageError::LogDirOffline(_))
    ));
    b.append(&big, 0, None).unwrap();
    let _ = m.shutdown();
    drop((a, b, m));
    // Still full at restart: loading that dir fails, it stays offline, the other one opens.
    let m = manager(&[small.as_path(), other.path()]);
    assert_eq!(m.offline_log_dirs(), std::slice::from_ref(&small));
    assert!(m.get(&ta).is_none());
    assert!(matches!(
        m.get_or_create(&ta, Uuid::new_v4(), config.clone()),
        Err(StorageError::LogDirOffline(_))
    ));
    assert_eq!(m.get(&tb).unwrap().log_end_offset(), 4);
    drop(m);
    // Once the operator makes room, the full dir is recovered to its whole batches.
    let grown = std::process::Command::new("mount")
        .args(["-o", "remount,size=8m"])
        .arg(mount_point.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(grown);
    let m = manager(&[small.as_path(), other.path()]);
    assert!(m.offline_log_dirs().is_empty());
    assert_eq!(m.get(&ta).unwrap().log_end_offset(), leo);
    assert_eq!(m.get(&tb).unwrap().log_end_offset(), 4);
}
