//! TEMPORARY stub; the real state machine lands from the kv branch.
use crate::ops::{DecodeError, LogCommand, ReadOp, WriteOp};
use crate::reply::Reply;
use bytes::Bytes;
use std::collections::HashMap;

#[derive(Default)]
pub struct KvState {
    map: HashMap<Bytes, Bytes>,
}
impl KvState {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn apply(&mut self, cmd: &LogCommand) -> Reply {
        match &cmd.op {
            WriteOp::Set { key, value, .. } => {
                self.map.insert(key.clone(), value.clone());
                Reply::Ok
            }
            WriteOp::IncrBy { key, delta } => {
                let v: i64 = self
                    .map
                    .get(key)
                    .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
                    .unwrap_or(0)
                    + delta;
                self.map.insert(key.clone(), Bytes::from(v.to_string()));
                Reply::Int(v)
            }
            _ => Reply::Ok,
        }
    }
    pub fn read(&self, op: &ReadOp, _now: u64) -> Reply {
        match op {
            ReadOp::Get { key } => self.map.get(key).cloned().map_or(Reply::Nil, Reply::Bulk),
            ReadOp::DbSize => Reply::Int(self.map.len() as i64),
            _ => Reply::Nil,
        }
    }
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.map {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        out
    }
    pub fn restore(b: &[u8]) -> Result<KvState, DecodeError> {
        let mut s = KvState::new();
        let mut i = 0;
        fn take(b: &[u8], i: &mut usize) -> Result<Bytes, DecodeError> {
            let n = u32::from_le_bytes(b.get(*i..*i + 4).ok_or(DecodeError("t".into()))?.try_into().unwrap()) as usize;
            let v = Bytes::copy_from_slice(b.get(*i + 4..*i + 4 + n).ok_or(DecodeError("t".into()))?);
            *i += 4 + n;
            Ok(v)
        }
        while i < b.len() {
            let k = take(b, &mut i)?;
            let v = take(b, &mut i)?;
            s.map.insert(k, v);
        }
        Ok(s)
    }
    pub fn expired_keys(&self, _now: u64, _limit: usize) -> Vec<Bytes> {
        vec![]
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn expires_len(&self) -> usize {
        0
    }
}
impl LogCommand {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.now_ms.to_le_bytes().to_vec();
        if let WriteOp::Set { key, value, .. } = &self.op {
            v.push(1);
            v.extend_from_slice(&(key.len() as u32).to_le_bytes());
            v.extend_from_slice(key);
            v.extend_from_slice(value);
        }
        v
    }
    pub fn decode(b: &[u8]) -> Result<LogCommand, DecodeError> {
        let now_ms = u64::from_le_bytes(b[..8].try_into().unwrap());
        let n = u32::from_le_bytes(b[9..13].try_into().unwrap()) as usize;
        Ok(LogCommand { now_ms, op: WriteOp::Set { key: Bytes::copy_from_slice(&b[13..13 + n]), value: Bytes::copy_from_slice(&b[13 + n..]), cond: crate::ops::SetCond::Always, expire: None, get: false } })
    }
}
impl ReadOp {
    pub fn keys(&self) -> Vec<&Bytes> {
        match self {
            ReadOp::Get { key } => vec![key],
            _ => vec![],
        }
    }
}
impl WriteOp {
    pub fn keys(&self) -> Vec<&Bytes> {
        match self {
            WriteOp::Set { key, .. } | WriteOp::IncrBy { key, .. } => vec![key],
            _ => vec![],
        }
    }
}
