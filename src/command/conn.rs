//! Connection and server commands: PING ECHO QUIT HELLO SELECT CLIENT INFO.

use bytes::Bytes;
use shards::Reply;

use super::{cstr, error_line, int, is, table, unknown_subcommand, Command};

/// Parses the connection command `name` (arity already checked against the table).
pub(super) fn parse(name: &str, argv: &[Bytes]) -> Result<Command, Reply> {
    let a = &argv[1..];
    match name {
        "ping" => match a {
            [] => Ok(Command::Ping(None)),
            [msg] => Ok(Command::Ping(Some(msg.clone()))),
            _ => Err(Reply::wrong_arity("ping")),
        },
        "echo" => Ok(Command::Immediate(Reply::Bulk(a[0].clone()))),
        "quit" => Ok(Command::Quit),
        "hello" => hello(a),
        "select" => {
            let db = int(&a[0])?;
            if i32::try_from(db).is_err() {
                return Err(Reply::not_integer());
            }
            if db != 0 {
                return Err(Reply::err("ERR DB index is out of range"));
            }
            Ok(Command::Immediate(Reply::Ok))
        }
        "client" => client(argv),
        "info" => Ok(Command::Info(
            a.iter()
                .map(|s| Bytes::from(s.to_ascii_lowercase()))
                .collect(),
        )),
        _ => Err(super::unknown_command(argv)),
    }
}

/// Redis' client-name charset: printable ASCII without space (`!`..=`~`); empty allowed.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|c| (b'!'..=b'~').contains(c))
}

fn bad_name() -> Reply {
    Reply::err("ERR Client names cannot contain spaces, newlines or special characters.")
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]].
fn hello(a: &[Bytes]) -> Result<Command, Reply> {
    let mut protover = None;
    let mut rest = a;
    if let Some((v, tail)) = a.split_first() {
        let v = shards::kv::parse_i64(v)
            .ok_or_else(|| Reply::err("ERR Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&v) {
            return Err(Reply::err("NOPROTO unsupported protocol version"));
        }
        protover = Some(v);
        rest = tail;
    }
    let mut setname = None;
    let mut auth_user: Option<&Bytes> = None;
    let mut j = 0;
    while j < rest.len() {
        let more = rest.len() - 1 - j;
        let opt = &rest[j];
        if is(opt, "auth") && more >= 2 {
            auth_user = Some(&rest[j + 1]);
            j += 3;
        } else if is(opt, "setname") && more >= 1 {
            let name = &rest[j + 1];
            if !valid_name(name) {
                return Err(bad_name());
            }
            setname = Some(name.clone());
            j += 2;
        } else {
            return Err(error_line(&[
                b"ERR Syntax error in HELLO option '",
                cstr(opt),
                b"'",
            ]));
        }
    }
    // No password is configured: the `default` user accepts any password, and it is the
    // only user.
    if auth_user.is_some_and(|u| u.as_ref() != b"default") {
        return Err(Reply::err(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ));
    }
    Ok(Command::Hello { protover, setname })
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "LIST [TYPE <normal|master|replica|pubsub>] [ID <id> [<id> ...]]",
    "    Return information about client connections.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <LIB-NAME|LIB-VER> <value>",
    "    Accepted for client libraries; not stored.",
    "NO-EVICT (ON|OFF)",
    "    Accepted; leasekv does not evict clients.",
    "NO-TOUCH (ON|OFF)",
    "    Accepted; leasekv keeps no access times.",
    "HELP",
    "    Print this help.",
];

fn on_off(arg: &[u8]) -> Result<Command, Reply> {
    if is(arg, "on") || is(arg, "off") {
        Ok(Command::Immediate(Reply::Ok))
    } else {
        Err(Reply::syntax())
    }
}

/// CLIENT <subcommand> ...
fn client(argv: &[Bytes]) -> Result<Command, Reply> {
    let Some(sub) = table::subcommand("client", &argv[1]) else {
        return Err(unknown_subcommand(argv));
    };
    if !sub.arity_ok(argv.len()) {
        return Err(Reply::wrong_arity(sub.name));
    }
    let a = &argv[2..];
    match sub.name {
        "client|setname" => {
            if !valid_name(&a[0]) {
                return Err(bad_name());
            }
            Ok(Command::ClientSetName(a[0].clone()))
        }
        "client|getname" => Ok(Command::ClientGetName),
        "client|id" => Ok(Command::ClientId),
        "client|info" => Ok(Command::ClientInfo),
        "client|list" => client_list(a),
        "client|setinfo" => {
            let attr = if is(&a[0], "lib-name") {
                "lib-name"
            } else if is(&a[0], "lib-ver") {
                "lib-ver"
            } else {
                return Err(error_line(&[
                    b"ERR Unrecognized option '",
                    cstr(&a[0]),
                    b"'",
                ]));
            };
            if !valid_name(&a[1]) {
                return Err(Reply::err(format!(
                    "ERR {attr} cannot contain spaces, newlines or special characters."
                )));
            }
            Ok(Command::Immediate(Reply::Ok))
        }
        "client|no-evict" | "client|no-touch" => on_off(&a[0]),
        _ => Ok(Command::Immediate(Reply::Array(
            CLIENT_HELP.iter().map(|l| Reply::status(l)).collect(),
        ))),
    }
}

/// CLIENT LIST [TYPE type | ID id [id ...]]: validated like Redis.
fn client_list(a: &[Bytes]) -> Result<Command, Reply> {
    match a {
        [] => Ok(Command::ClientList),
        [opt, ty] if is(opt, "type") => {
            const TYPES: [&str; 5] = ["normal", "master", "replica", "slave", "pubsub"];
            if TYPES.iter().any(|t| is(ty, t)) {
                Ok(Command::ClientList)
            } else {
                Err(error_line(&[b"ERR Unknown client type '", cstr(ty), b"'"]))
            }
        }
        [opt, ids @ ..] if is(opt, "id") && !ids.is_empty() => {
            for id in ids {
                if shards::kv::parse_i64(id).is_none() {
                    return Err(Reply::err("ERR Invalid client ID"));
                }
            }
            Ok(Command::ClientList)
        }
        _ => Err(Reply::syntax()),
    }
}
