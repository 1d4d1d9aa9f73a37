//! The static command table: arity checks in the parser and the COMMAND introspection replies.
//!
//! Values (flags, key positions, ACL categories, tips, key-spec flags) are those Redis 7.0
//! reports in `COMMAND INFO`; `client|setinfo` and `client|no-touch` come from Redis 7.2.
//! The CLUSTER subcommands listed are the read-only ones leasekv answers (see
//! `command/cluster.rs`).

use bytes::Bytes;
use shards::glob::Glob;
use shards::Reply;

/// One command's static description, in Redis' `COMMAND INFO` terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// Lower-case name; subcommands are `container|sub`.
    pub name: &'static str,
    /// Positive: exact argument count including the name; negative: at least `-arity`.
    pub arity: i32,
    pub flags: &'static [&'static str],
    /// Position of the first key (0: no keys).
    pub first_key: i32,
    /// Position of the last key; negative counts from the end (-1: last argument).
    pub last_key: i32,
    /// Distance between keys.
    pub step: i32,
    /// ACL categories, e.g. `@read`.
    pub categories: &'static [&'static str],
    /// Command tips, e.g. `request_policy:multi_shard`.
    pub tips: &'static [&'static str],
    /// Flags of the key specification (empty when the command has no keys).
    pub key_flags: &'static [&'static str],
}

impl CommandSpec {
    /// Whether `argc` arguments (name included) satisfy the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    pub fn is_write(&self) -> bool {
        self.flags.contains(&"write")
    }

    /// Positions of the key arguments in an argv of `argc` entries.
    pub fn key_positions(&self, argc: usize) -> Vec<usize> {
        if self.first_key <= 0 || self.step <= 0 {
            return Vec::new();
        }
        let last = if self.last_key < 0 {
            argc as i64 + i64::from(self.last_key)
        } else {
            i64::from(self.last_key)
        };
        let last = last.min(argc as i64 - 1);
        (i64::from(self.first_key)..=last)
            .step_by(self.step as usize)
            .map(|p| p as usize)
            .collect()
    }
}

#[allow(clippy::too_many_arguments)]
const fn cs(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    first_key: i32,
    last_key: i32,
    step: i32,
    categories: &'static [&'static str],
    tips: &'static [&'static str],
    key_flags: &'static [&'static str],
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key,
        last_key,
        step,
        categories,
        tips,
        key_flags,
    }
}

/// Every top-level command leasekv accepts.
#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    cs("get", 2, &["readonly", "fast"], 1, 1, 1, &["@read", "@string", "@fast"], &[], &["RO", "access"]),
    cs("set", -3, &["write", "denyoom"], 1, 1, 1, &["@write", "@string", "@slow"], &[], &["RW", "access", "update", "variable_flags"]),
    cs("setnx", 3, &["write", "denyoom", "fast"], 1, 1, 1, &["@write", "@string", "@fast"], &[], &["OW", "insert"]),
    cs("setex", 4, &["write", "denyoom"], 1, 1, 1, &["@write", "@string", "@slow"], &[], &["OW", "update"]),
    cs("psetex", 4, &["write", "denyoom"], 1, 1, 1, &["@write", "@string", "@slow"], &[], &["OW", "update"]),
    cs("getset", 3, &["write", "denyoom", "fast"], 1, 1, 1, &["@write", "@string", "@fast"], &[], &["RW", "access", "update"]),
    cs("getdel", 2, &["write", "fast"], 1, 1, 1, &["@write", "@string", "@fast"], &[], &["RW", "access", "delete"]),
    cs("mget", -2, &["readonly", "fast"], 1, -1, 1, &["@read", "@string", "@fast"], &["request_policy:multi_shard"], &["RO", "access"]),
    cs("mset", -3, &["write", "denyoom"], 1, -1, 2, &["@write", "@string", "@slow"], &[ "request_policy:multi_shard", "response_policy:all_succeeded", ], &["OW", "update"]),
    cs("msetnx", -3, &["write", "denyoom"], 1, -1, 2, &["@write", "@string", "@slow"], &["request_policy:multi_shard", "response_policy:agg_min"], &["OW", "insert"]),
    cs("del", -2, &["write"], 1, -1, 1, &["@keyspace", "@write", "@slow"], &["request_policy:multi_shard", "response_policy:agg_sum"], &["RM", "delete"]),
    cs("unlink", -2, &["write", "fast"], 1, -1, 1, &["@keyspace", "@write", "@fast"], &["request_policy:multi_shard", "response_policy:agg_sum"], &["RM", "delete"]),
    cs("exists", -2, &["readonly", "fast"], 1, -1, 1, &["@keyspace", "@read", "@fast"], &["request_policy:multi_shard", "response_policy:agg_sum"], &["RO"]),
    cs("incr", 2, &["write", "denyoom", "fast"], 1, 1, 1, &["@write", "@string", "@fast"], &[], &["RW", "access", "update"]),
    cs("decr", 2, &["write", "denyoom", "fast"], 1, 1, 1, &["@write", "@string", "@fast"], &[], &["RW", "access", "update"]),
    cs("incrby", 3, &["write", "denyoom", "fast"], 1, 1, 1, &["@write", "@string", "@fast"], &[], &["RW", "access", "update"]),
    cs("decrby", 3, &["write", "denyoom", "fast"], 1, 1, 1, &["@write", "@string", "@fast"], &[], &["RW", "access", "update"]),
    cs("incrbyfloat", 3, &["write", "denyoom", "fast"], 1, 1, 1, &["@write", "@string", "@fast"], &[], &["RW", "access", "update"]),
    cs("append", 3, &["write", "denyoom", "fast"], 1, 1, 1, &["@write", "@string", "@fast"], &[], &["RW", "insert"]),
    cs("setrange", 4, &["write", "denyoom"], 1, 1, 1, &["@write", "@string", "@slow"], &[], &["RW", "update"]),
    cs("getrange", 4, &["readonly"], 1, 1, 1, &["@read", "@string", "@slow"], &[], &["RO", "access"]),
    cs("strlen", 2, &["readonly", "fast"], 1, 1, 1, &["@read", "@string", "@fast"], &[], &["RO"]),
    cs("expire", -3, &["write", "fast"], 1, 1, 1, &["@keyspace", "@write", "@fast"], &[], &["RW", "update"]),
    cs("pexpire", -3, &["write", "fast"], 1, 1, 1, &["@keyspace", "@write", "@fast"], &[], &["RW", "update"]),
    cs("expireat", -3, &["write", "fast"], 1, 1, 1, &["@keyspace", "@write", "@fast"], &[], &["RW", "update"]),
    cs("pexpireat", -3, &["write", "fast"], 1, 1, 1, &["@keyspace", "@write", "@fast"], &[], &["RW", "update"]),
    cs("persist", 2, &["write", "fast"], 1, 1, 1, &["@keyspace", "@write", "@fast"], &[], &["RW", "update"]),
    cs("ttl", 2, &["readonly", "fast"], 1, 1, 1, &["@keyspace", "@read", "@fast"], &["nondeterministic_output"], &["RO", "access"]),
    cs("pttl", 2, &["readonly", "fast"], 1, 1, 1, &["@keyspace", "@read", "@fast"], &["nondeterministic_output"], &["RO", "access"]),
    cs("type", 2, &["readonly", "fast"], 1, 1, 1, &["@keyspace", "@read", "@fast"], &[], &["RO"]),
    cs("dbsize", 1, &["readonly", "fast"], 0, 0, 0, &["@keyspace", "@read", "@fast"], &["request_policy:all_shards", "response_policy:agg_sum"], &[]),
    cs("flushall", -1, &["write"], 0, 0, 0, &["@keyspace", "@write", "@slow", "@dangerous"], &["request_policy:all_shards", "response_policy:all_succeeded"], &[]),
    cs("keys", 2, &["readonly"], 0, 0, 0, &["@keyspace", "@read", "@slow", "@dangerous"], &["request_policy:all_shards", "nondeterministic_output_order"], &[]),
    cs("scan", -2, &["readonly"], 0, 0, 0, &["@keyspace", "@read", "@slow"], &["nondeterministic_output", "request_policy:special"], &[]),
    cs("ping", -1, &["fast"], 0, 0, 0, &["@fast", "@connection"], &["request_policy:all_shards", "response_policy:all_succeeded"], &[]),
    cs("echo", 2, &["loading", "stale", "fast"], 0, 0, 0, &["@fast", "@connection"], &[], &[]),
    cs("quit", -1, &[ "noscript", "loading", "stale", "fast", "no_auth", "allow_busy", ], 0, 0, 0, &["@fast", "@connection"], &[], &[]),
    cs("hello", -1, &[ "noscript", "loading", "stale", "fast", "no_auth", "allow_busy", ], 0, 0, 0, &["@fast", "@connection"], &[], &[]),
    cs("select", 2, &["loading", "stale", "fast"], 0, 0, 0, &["@fast", "@connection"], &[], &[]),
    cs("command", -1, &["loading", "stale"], 0, 0, 0, &["@slow", "@connection"], &["nondeterministic_output_order"], &[]),
    cs("client", -2, &[], 0, 0, 0, &["@slow"], &[], &[]),
    cs("info", -1, &["loading", "stale"], 0, 0, 0, &["@slow", "@dangerous"], &[ "nondeterministic_output", "request_policy:all_shards", "response_policy:special", ], &[]),
    cs("cluster", -2, &[], 0, 0, 0, &["@slow"], &[], &[]),
    cs("readonly", 1, &["loading", "stale", "fast"], 0, 0, 0, &["@fast", "@connection"], &[], &[]),
    cs("readwrite", 1, &["loading", "stale", "fast"], 0, 0, 0, &["@fast", "@connection"], &[], &[]),
    cs("asking", 1, &["fast"], 0, 0, 0, &["@fast", "@connection"], &[], &[]),
];

/// Subcommands of CLIENT, COMMAND and CLUSTER (`container|sub`).
#[rustfmt::skip]
pub static SUBCOMMANDS: &[CommandSpec] = &[
    cs("command|count", 2, &["loading", "stale"], 0, 0, 0, &["@slow", "@connection"], &[], &[]),
    cs("command|info", -2, &["loading", "stale"], 0, 0, 0, &["@slow", "@connection"], &["nondeterministic_output_order"], &[]),
    cs("command|docs", -2, &["loading", "stale"], 0, 0, 0, &["@slow", "@connection"], &["nondeterministic_output_order"], &[]),
    cs("command|list", -2, &["loading", "stale"], 0, 0, 0, &["@slow", "@connection"], &["nondeterministic_output_order"], &[]),
    cs("command|getkeys", -4, &["loading", "stale"], 0, 0, 0, &["@slow", "@connection"], &[], &[]),
    cs("command|help", 2, &["loading", "stale"], 0, 0, 0, &["@slow", "@connection"], &[], &[]),
    cs("client|setname", 3, &["noscript", "loading", "stale"], 0, 0, 0, &["@slow", "@connection"], &[], &[]),
    cs("client|setinfo", 4, &["noscript", "loading", "stale", "allow_busy"], 0, 0, 0, &["@slow", "@connection"], &[], &[]),
    cs("client|getname", 2, &["noscript", "loading", "stale"], 0, 0, 0, &["@slow", "@connection"], &[], &[]),
    cs("client|id", 2, &["noscript", "loading", "stale"], 0, 0, 0, &["@slow", "@connection"], &[], &[]),
    cs("client|info", 2, &["noscript", "loading", "stale"], 0, 0, 0, &["@slow", "@connection"], &["nondeterministic_output"], &[]),
    cs("client|list", -2, &["admin", "noscript", "loading", "stale"], 0, 0, 0, &["@admin", "@slow", "@dangerous", "@connection"], &["nondeterministic_output"], &[]),
    cs("client|no-evict", 3, &["admin", "noscript", "loading", "stale"], 0, 0, 0, &["@admin", "@slow", "@dangerous", "@connection"], &[], &[]),
    cs("client|no-touch", 3, &["noscript", "loading", "stale"], 0, 0, 0, &["@slow", "@connection"], &[], &[]),
    cs("client|help", 2, &["loading", "stale"], 0, 0, 0, &["@slow", "@connection"], &[], &[]),
    cs("cluster|slots", 2, &["stale"], 0, 0, 0, &["@slow"], &["nondeterministic_output"], &[]),
    cs("cluster|shards", 2, &["stale"], 0, 0, 0, &["@slow"], &["nondeterministic_output"], &[]),
    cs("cluster|nodes", 2, &["stale"], 0, 0, 0, &["@slow"], &["nondeterministic_output"], &[]),
    cs("cluster|info", 2, &["stale"], 0, 0, 0, &["@slow"], &["nondeterministic_output"], &[]),
    cs("cluster|myid", 2, &["stale"], 0, 0, 0, &["@slow"], &[], &[]),
    cs("cluster|keyslot", 3, &["stale"], 0, 0, 0, &["@slow"], &[], &[]),
    cs("cluster|countkeysinslot", 3, &["stale"], 0, 0, 0, &["@slow"], &[], &[]),
    cs("cluster|getkeysinslot", 4, &["stale"], 0, 0, 0, &["@slow"], &["nondeterministic_output"], &[]),
    cs("cluster|help", 2, &["loading", "stale"], 0, 0, 0, &["@slow"], &[], &[]),
];

/// Lower-cases a command name into `buf`; None when it is too long to be a known name.
fn lower<'a>(name: &[u8], buf: &'a mut [u8; 32]) -> Option<&'a [u8]> {
    let out = buf.get_mut(..name.len())?;
    for (o, c) in out.iter_mut().zip(name) {
        *o = c.to_ascii_lowercase();
    }
    Some(out)
}

/// Looks a command up by name, case-insensitively. `container|sub` finds a subcommand.
pub fn spec(name: &str) -> Option<&'static CommandSpec> {
    lookup(name.as_bytes())
}

/// [`spec`] for a raw argument.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; 32];
    let name = lower(name, &mut buf)?;
    let table = if name.contains(&b'|') {
        SUBCOMMANDS
    } else {
        COMMANDS
    };
    table.iter().find(|s| s.name.as_bytes() == name)
}

/// A top-level command by name, case-insensitively.
pub(super) fn top_level(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; 32];
    let name = lower(name, &mut buf)?;
    COMMANDS.iter().find(|s| s.name.as_bytes() == name)
}

/// The subcommand `sub` of `container` (both as typed by the client).
pub fn subcommand(container: &str, sub: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; 32];
    let sub = lower(sub, &mut buf)?;
    SUBCOMMANDS.iter().find(|s| {
        s.name
            .split_once('|')
            .is_some_and(|(c, n)| c == container && n.as_bytes() == sub)
    })
}

fn subcommands_of(container: &str) -> impl Iterator<Item = &'static CommandSpec> + '_ {
    SUBCOMMANDS
        .iter()
        .filter(move |s| s.name.split_once('|').is_some_and(|(c, _)| c == container))
}

fn statuses(items: &[&'static str]) -> Reply {
    Reply::Array(items.iter().map(|s| Reply::status(s)).collect())
}

fn bulk_str(s: &'static str) -> Reply {
    Reply::Bulk(Bytes::from_static(s.as_bytes()))
}

/// The single key specification Redis reports for these commands: keys from `first_key`
/// to `last_key` (relative to the first; negative from the end) every `step`.
fn key_specs(s: &CommandSpec) -> Reply {
    if s.first_key <= 0 {
        return Reply::Array(Vec::new());
    }
    let last = if s.last_key < 0 {
        s.last_key
    } else {
        s.last_key - s.first_key
    };
    let spec = Reply::Map(vec![
        (bulk_str("flags"), statuses(s.key_flags)),
        (
            bulk_str("begin_search"),
            Reply::Map(vec![
                (bulk_str("type"), bulk_str("index")),
                (
                    bulk_str("spec"),
                    Reply::Map(vec![(bulk_str("index"), Reply::Int(s.first_key.into()))]),
                ),
            ]),
        ),
        (
            bulk_str("find_keys"),
            Reply::Map(vec![
                (bulk_str("type"), bulk_str("range")),
                (
                    bulk_str("spec"),
                    Reply::Map(vec![
                        (bulk_str("lastkey"), Reply::Int(last.into())),
                        (bulk_str("keystep"), Reply::Int(s.step.into())),
                        (bulk_str("limit"), Reply::Int(0)),
                    ]),
                ),
            ]),
        ),
    ]);
    Reply::Array(vec![spec])
}

/// One `COMMAND INFO` entry: name, arity, flags, first key, last key, step, ACL categories,
/// tips, key specs, subcommands.
pub fn info_reply(s: &CommandSpec) -> Reply {
    let container = !s.name.contains('|');
    let subs = if container {
        subcommands_of(s.name).map(info_reply).collect()
    } else {
        Vec::new()
    };
    Reply::Array(vec![
        bulk_str(s.name),
        Reply::Int(s.arity.into()),
        statuses(s.flags),
        Reply::Int(s.first_key.into()),
        Reply::Int(s.last_key.into()),
        Reply::Int(s.step.into()),
        statuses(s.categories),
        statuses(s.tips),
        key_specs(s),
        Reply::Array(subs),
    ])
}

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all commands.",
    "COUNT",
    "    Return the total number of commands in this server.",
    "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
    "    Return a list of all commands in this server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple commands.",
    "    If no command names are given, details for all commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple commands (none are kept).",
    "GETKEYS <full-command>",
    "    Return the keys from a full command.",
    "HELP",
    "    Print this help.",
];

/// Answers COMMAND and its subcommands (`argv[0]` is `COMMAND`; arity already checked).
/// Err carries the error reply.
pub(super) fn command_reply(argv: &[Bytes]) -> Result<Reply, Reply> {
    let Some(sub_arg) = argv.get(1) else {
        return Ok(Reply::Array(COMMANDS.iter().map(info_reply).collect()));
    };
    let Some(sub) = subcommand("command", sub_arg) else {
        return Err(super::unknown_subcommand(argv));
    };
    if !sub.arity_ok(argv.len()) {
        return Err(Reply::wrong_arity(sub.name));
    }
    let reply = match sub.name {
        "command|count" => Reply::Int(COMMANDS.len() as i64),
        "command|info" if argv.len() == 2 => {
            Reply::Array(COMMANDS.iter().map(info_reply).collect())
        }
        "command|info" => Reply::Array(
            argv[2..]
                .iter()
                .map(|n| lookup(n).map_or(Reply::Nil, info_reply))
                .collect(),
        ),
        // Documentation is not kept; an empty map is a valid answer for every request.
        "command|docs" => Reply::Map(Vec::new()),
        "command|list" => command_list(&argv[2..])?,
        "command|getkeys" => getkeys(&argv[2..])?,
        _ => Reply::Array(COMMAND_HELP.iter().map(|l| Reply::status(l)).collect()),
    };
    Ok(reply)
}

/// COMMAND LIST [FILTERBY MODULE m | ACLCAT c | PATTERN p]: commands and subcommands.
fn command_list(opts: &[Bytes]) -> Result<Reply, Reply> {
    let all: Vec<&CommandSpec> = COMMANDS
        .iter()
        .flat_map(|c| std::iter::once(c).chain(subcommands_of(c.name)))
        .collect();
    let names = |keep: &dyn Fn(&CommandSpec) -> bool| {
        Reply::Array(
            all.iter()
                .filter(|s| keep(s))
                .map(|s| bulk_str(s.name))
                .collect(),
        )
    };
    Ok(match opts {
        [] => names(&|_| true),
        [by, kind, arg] if by.eq_ignore_ascii_case(b"filterby") => {
            if kind.eq_ignore_ascii_case(b"module") {
                Reply::Array(Vec::new())
            } else if kind.eq_ignore_ascii_case(b"aclcat") {
                names(&|s| {
                    s.categories
                        .iter()
                        .any(|c| c.as_bytes()[1..].eq_ignore_ascii_case(arg))
                })
            } else if kind.eq_ignore_ascii_case(b"pattern") {
                // Redis matches command names case-insensitively; names are lower-case.
                let glob = Glob::new(&arg.to_ascii_lowercase());
                names(&|s| glob.matches(s.name.as_bytes()))
            } else {
                return Err(Reply::syntax());
            }
        }
        _ => return Err(Reply::syntax()),
    })
}

/// COMMAND GETKEYS <command> [args...].
fn getkeys(cmd: &[Bytes]) -> Result<Reply, Reply> {
    let Some(s) = cmd.first().and_then(|n| top_level(n)) else {
        return Err(Reply::err("ERR Invalid command specified"));
    };
    if s.first_key <= 0 {
        return Err(Reply::err("ERR The command has no key arguments"));
    }
    if !s.arity_ok(cmd.len()) {
        return Err(Reply::err(
            "ERR Invalid number of arguments specified for command",
        ));
    }
    Ok(Reply::Array(
        s.key_positions(cmd.len())
            .into_iter()
            .map(|p| Reply::Bulk(cmd[p].clone()))
            .collect(),
    ))
}
