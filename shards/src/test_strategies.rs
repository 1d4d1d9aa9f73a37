//! Proptest strategies shared by the codec tests (log entries and the wire format), so
//! every `WriteOp` variant is generated in exactly one place.

use bytes::Bytes;
use proptest::prelude::*;

use crate::ops::{ExpireCond, ExpireSpec, SetCond, WriteOp};

pub(crate) fn arb_bytes() -> impl Strategy<Value = Bytes> + Clone {
    proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

pub(crate) fn arb_spec() -> impl Strategy<Value = ExpireSpec> {
    prop_oneof![
        any::<u64>().prop_map(ExpireSpec::In),
        any::<u64>().prop_map(ExpireSpec::At),
        Just(ExpireSpec::Keep),
    ]
}

pub(crate) fn arb_write_op() -> impl Strategy<Value = WriteOp> {
    let pairs = proptest::collection::vec((arb_bytes(), arb_bytes()), 0..4);
    let keys = proptest::collection::vec(arb_bytes(), 0..4);
    prop_oneof![
        (
            arb_bytes(),
            arb_bytes(),
            prop_oneof![
                Just(SetCond::Always),
                Just(SetCond::IfAbsent),
                Just(SetCond::IfPresent)
            ],
            proptest::option::of(arb_spec()),
            any::<bool>()
        )
            .prop_map(|(key, value, cond, expire, get)| WriteOp::Set {
                key,
                value,
                cond,
                expire,
                get
            }),
        (arb_bytes(), arb_bytes()).prop_map(|(key, value)| WriteOp::SetNx { key, value }),
        arb_bytes().prop_map(|key| WriteOp::GetDel { key }),
        pairs.clone().prop_map(|pairs| WriteOp::MSet { pairs }),
        pairs.prop_map(|pairs| WriteOp::MSetNx { pairs }),
        keys.clone().prop_map(|keys| WriteOp::Del { keys }),
        (arb_bytes(), any::<i64>()).prop_map(|(key, delta)| WriteOp::IncrBy { key, delta }),
        (arb_bytes(), -1e300f64..1e300)
            .prop_map(|(key, delta)| WriteOp::IncrByFloat { key, delta }),
        (arb_bytes(), arb_bytes()).prop_map(|(key, value)| WriteOp::Append { key, value }),
        (arb_bytes(), any::<u64>(), arb_bytes())
            .prop_map(|(key, offset, value)| WriteOp::SetRange { key, offset, value }),
        (
            arb_bytes(),
            arb_spec(),
            prop_oneof![
                Just(ExpireCond::Always),
                Just(ExpireCond::IfNoTtl),
                Just(ExpireCond::IfTtl),
                Just(ExpireCond::Greater),
                Just(ExpireCond::Less),
                Just(ExpireCond::IfTtlLess)
            ]
        )
            .prop_map(|(key, at, cond)| WriteOp::Expire { key, at, cond }),
        arb_bytes().prop_map(|key| WriteOp::Persist { key }),
        Just(WriteOp::FlushAll),
        keys.prop_map(|keys| WriteOp::DeleteExpired { keys }),
    ]
}
