//! TEMPORARY stub; replaced by the kv branch.
use bytes::Bytes;
use shards::{ReadOp, Reply, SetCond, WriteOp};

pub enum Command {
    Immediate(Reply),
    Ping(Option<Bytes>),
    Quit,
    Hello {
        protover: Option<i64>,
        setname: Option<Bytes>,
    },
    ClientSetName(Bytes),
    ClientGetName,
    ClientId,
    ClientInfo,
    ClientList,
    Info(Vec<Bytes>),
    Read(ReadOp),
    Write(WriteOp),
    MGet(Vec<Bytes>),
    MSet(Vec<(Bytes, Bytes)>),
    MSetNx(Vec<(Bytes, Bytes)>),
    Del(Vec<Bytes>),
    Exists(Vec<Bytes>),
    DbSize,
    FlushAll,
    Keys(Bytes),
    Scan {
        cursor: u64,
        pattern: Option<Bytes>,
        count: usize,
        type_filter: Option<Bytes>,
    },
}

pub fn parse(argv: &[Bytes]) -> Result<Command, Reply> {
    let name = String::from_utf8_lossy(&argv[0]).to_ascii_lowercase();
    Ok(match name.as_str() {
        "ping" => Command::Ping(argv.get(1).cloned()),
        "quit" => Command::Quit,
        "get" => Command::Read(ReadOp::Get {
            key: argv[1].clone(),
        }),
        "set" => Command::Write(WriteOp::Set {
            key: argv[1].clone(),
            value: argv[2].clone(),
            cond: SetCond::Always,
            expire: None,
            get: false,
        }),
        "incr" => Command::Write(WriteOp::IncrBy {
            key: argv[1].clone(),
            delta: 1,
        }),
        "mget" => Command::MGet(argv[1..].to_vec()),
        "dbsize" => Command::DbSize,
        "info" => Command::Info(argv[1..].to_vec()),
        _ => return Err(Reply::err("ERR unknown command")),
    })
}
