//! INCRBYFLOAT arithmetic, bit-exact with Redis on x86-64 Linux.
//!
//! Redis parses with glibc `strtold` into a C `long double` (x87 80-bit extended: 64-bit
//! significand, correctly rounded), adds with one round-to-nearest-even, and stores the result
//! printed with `%.17Lf` minus trailing zeros. Doing the same in `f64` gives visibly different
//! strings (`0.1 + 0.2` is `0.3` in Redis, `0.30000000000000004` in `f64`), so this module
//! emulates the 80-bit format in software with a tiny big integer. Every step is exact
//! integer arithmetic followed by one explicit rounding, so the results do not depend on the
//! host's floating-point unit. (Redis on aarch64 uses 128-bit long doubles and can differ in
//! the last digits; x86-64 is the reference here.)

use std::cmp::Ordering;

/// Unsigned big integer: little-endian `u32` limbs, no zero limb at the top (zero is empty).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn zero() -> Big {
        Big(Vec::new())
    }

    fn from_u128(mut v: u128) -> Big {
        let mut limbs = Vec::new();
        while v > 0 {
            limbs.push(v as u32);
            v >>= 32;
        }
        Big(limbs)
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn bit_len(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(&top) => (self.0.len() as u64 - 1) * 32 + u64::from(32 - top.leading_zeros()),
        }
    }

    fn bit(&self, i: u64) -> bool {
        let w = (i / 32) as usize;
        w < self.0.len() && (self.0[w] >> (i % 32)) & 1 == 1
    }

    /// Whether any bit below position `i` is set.
    fn any_below(&self, i: u64) -> bool {
        let w = (i / 32) as usize;
        let b = (i % 32) as u32;
        if self.0[..w.min(self.0.len())].iter().any(|&l| l != 0) {
            return true;
        }
        w < self.0.len() && b > 0 && self.0[w] & ((1u32 << b) - 1) != 0
    }

    fn low_u128(&self) -> u128 {
        self.0
            .iter()
            .take(4)
            .enumerate()
            .fold(0u128, |acc, (i, &l)| acc | (u128::from(l) << (32 * i)))
    }

    fn shl(&self, n: u64) -> Big {
        if self.is_zero() {
            return Big::zero();
        }
        let bits = (n % 32) as u32;
        let mut out = vec![0u32; (n / 32) as usize];
        out.reserve(self.0.len() + 1);
        if bits == 0 {
            out.extend_from_slice(&self.0);
        } else {
            let mut carry = 0u32;
            for &l in &self.0 {
                out.push((l << bits) | carry);
                carry = l >> (32 - bits);
            }
            if carry != 0 {
                out.push(carry);
            }
        }
        Big(out)
    }

    fn shr(&self, n: u64) -> Big {
        let words = (n / 32) as usize;
        if words >= self.0.len() {
            return Big::zero();
        }
        let bits = (n % 32) as u32;
        let src = &self.0[words..];
        let mut out: Vec<u32> = if bits == 0 {
            src.to_vec()
        } else {
            (0..src.len())
                .map(|i| {
                    let hi = src.get(i + 1).map_or(0, |&h| h << (32 - bits));
                    (src[i] >> bits) | hi
                })
                .collect()
        };
        while out.last() == Some(&0) {
            out.pop();
        }
        Big(out)
    }

    fn mul_small(&mut self, m: u32) {
        if m == 0 {
            self.0.clear();
            return;
        }
        let mut carry = 0u64;
        for l in self.0.iter_mut() {
            let v = u64::from(*l) * u64::from(m) + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn add_small(&mut self, a: u32) {
        let mut carry = u64::from(a);
        for l in self.0.iter_mut() {
            if carry == 0 {
                return;
            }
            let v = u64::from(*l) + carry;
            *l = v as u32;
            carry = v >> 32;
        }
        if carry > 0 {
            self.0.push(carry as u32);
        }
    }

    fn mul_pow5(&mut self, mut n: u64) {
        const FIVE_POW_13: u32 = 1_220_703_125;
        while n >= 13 {
            self.mul_small(FIVE_POW_13);
            n -= 13;
        }
        self.mul_small(5u32.pow(n as u32));
    }

    fn cmp(&self, o: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&o.0.len())
            .then_with(|| self.0.iter().rev().cmp(o.0.iter().rev()))
    }

    fn add(&self, o: &Big) -> Big {
        let (long, short) = if self.0.len() >= o.0.len() {
            (self, o)
        } else {
            (o, self)
        };
        let mut out = Vec::with_capacity(long.0.len() + 1);
        let mut carry = 0u64;
        for (i, &l) in long.0.iter().enumerate() {
            let v = u64::from(l) + u64::from(*short.0.get(i).unwrap_or(&0)) + carry;
            out.push(v as u32);
            carry = v >> 32;
        }
        if carry > 0 {
            out.push(carry as u32);
        }
        Big(out)
    }

    /// `self - o`; requires `self >= o`.
    fn sub(&self, o: &Big) -> Big {
        let mut out = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for (i, &l) in self.0.iter().enumerate() {
            let mut v = i64::from(l) - i64::from(*o.0.get(i).unwrap_or(&0)) - borrow;
            borrow = 0;
            if v < 0 {
                v += 1 << 32;
                borrow = 1;
            }
            out.push(v as u32);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    fn divmod_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for l in self.0.iter_mut().rev() {
            let v = (rem << 32) | u64::from(*l);
            *l = (v / u64::from(d)) as u32;
            rem = v % u64::from(d);
        }
        self.trim();
        rem as u32
    }

    fn to_decimal(&self) -> String {
        let mut chunks = Vec::new();
        let mut n = self.clone();
        while !n.is_zero() {
            chunks.push(n.divmod_small(1_000_000_000));
        }
        let mut s = chunks
            .pop()
            .map_or_else(|| "0".to_string(), |c| c.to_string());
        for c in chunks.iter().rev() {
            s.push_str(&format!("{c:09}"));
        }
        s
    }
}

/// `floor(n / d)` when the quotient is below 2^127, and whether the remainder is non-zero.
/// Restoring division: one compare-and-subtract per quotient bit.
fn div_short_quotient(n: &Big, d: &Big) -> (u128, bool) {
    if n.cmp(d) == Ordering::Less {
        return (0, !n.is_zero());
    }
    let span = n.bit_len() - d.bit_len();
    debug_assert!(span < 127);
    let mut r = n.clone();
    let mut q = 0u128;
    for i in (0..=span).rev() {
        let ds = d.shl(i);
        if r.cmp(&ds) != Ordering::Less {
            r = r.sub(&ds);
            q |= 1u128 << i;
        }
    }
    (q, !r.is_zero())
}

/// A binary floating-point format: values are `mant * 2^exp` with `mant < 2^prec`.
struct Format {
    prec: u32,
    /// Exponent of the smallest subnormal.
    min_exp: i64,
    /// Largest exponent of a `prec`-bit significand.
    max_exp: i64,
}

/// x87 extended: 64-bit significand, largest finite (2^64-1)*2^16320, smallest 2^-16445.
const X87: Format = Format {
    prec: 64,
    min_exp: -16445,
    max_exp: 16320,
};

const BINARY64: Format = Format {
    prec: 53,
    min_exp: -1074,
    max_exp: 971,
};

/// Rounds `n * 2^e` (plus a positive amount below one unit of `n`'s last bit when `sticky`)
/// to nearest-even in format `f`. Returns `(mant, exp)`, `mant == 0` on underflow to zero, or
/// None on overflow. Callers setting `sticky` pass at least `prec + 2` significant bits, so the
/// sticky amount always lies below the rounding position.
fn round(n: &Big, e: i64, sticky: bool, f: &Format) -> Option<(u64, i64)> {
    if n.is_zero() {
        return Some((0, 0));
    }
    let len = n.bit_len() as i64;
    let mut re = (e + len - i64::from(f.prec)).max(f.min_exp);
    let shift = re - e;
    let mut mant: u128;
    if shift <= 0 {
        // Exact: at most `prec` bits after shifting left.
        mant = n.shl((-shift) as u64).low_u128();
    } else {
        let s = shift as u64;
        mant = n.shr(s).low_u128();
        let half = n.bit(s - 1);
        let rest = sticky || n.any_below(s - 1);
        if half && (rest || mant & 1 == 1) {
            mant += 1;
            if mant == 1u128 << f.prec {
                mant >>= 1;
                re += 1;
            }
        }
    }
    if mant == 0 {
        return Some((0, 0));
    }
    if re > f.max_exp {
        return None;
    }
    Some((mant as u64, re))
}

/// A finite x87 extended value: `(-1)^neg * mant * 2^exp`, `mant == 0` for (signed) zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct F80 {
    neg: bool,
    mant: u64,
    exp: i64,
}

/// What `strtold` produced for an accepted input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ld {
    Finite(F80),
    Inf { neg: bool },
}

impl F80 {
    pub(crate) const ZERO: F80 = F80 {
        neg: false,
        mant: 0,
        exp: 0,
    };

    fn from_rounded(neg: bool, r: (u64, i64)) -> F80 {
        F80 {
            neg,
            mant: r.0,
            exp: r.1,
        }
    }

    /// `a + b` with one rounding; None when the sum overflows to infinity.
    pub(crate) fn add(a: F80, b: F80) -> Option<F80> {
        if a.mant == 0 && b.mant == 0 {
            // -0 + -0 = -0, any other zero sum is +0 (round to nearest).
            return Some(F80 {
                neg: a.neg && b.neg,
                ..F80::ZERO
            });
        }
        if a.mant == 0 {
            return Some(b);
        }
        if b.mant == 0 {
            return Some(a);
        }
        let (hi, lo) = if a.exp >= b.exp { (a, b) } else { (b, a) };
        let gap = hi.exp - lo.exp;
        if gap > 200 {
            // `lo` is below every bit of `hi` (which is normal here, so 64 bits wide): it only
            // acts as a sticky bit. Three guard bits keep it under the rounding position.
            let n = Big::from_u128(u128::from(hi.mant) << 3);
            let n = if hi.neg == lo.neg {
                n
            } else {
                n.sub(&Big::from_u128(1))
            };
            return round(&n, hi.exp - 3, true, &X87).map(|r| F80::from_rounded(hi.neg, r));
        }
        let na = Big::from_u128(u128::from(hi.mant)).shl(gap as u64);
        let nb = Big::from_u128(u128::from(lo.mant));
        let (neg, n) = if hi.neg == lo.neg {
            (hi.neg, na.add(&nb))
        } else {
            match na.cmp(&nb) {
                Ordering::Greater => (hi.neg, na.sub(&nb)),
                Ordering::Less => (lo.neg, nb.sub(&na)),
                Ordering::Equal => return Some(F80::ZERO),
            }
        };
        round(&n, lo.exp, false, &X87).map(|r| F80::from_rounded(neg, r))
    }

    /// `%.17Lf` with trailing zeros (and a trailing `.`) removed and `-0` printed as `0`:
    /// Redis' `ld2string(.., LD_STR_HUMAN)`. glibc prints exactly, ties to even.
    pub(crate) fn format_human(self) -> String {
        if self.mant == 0 {
            return "0".to_string();
        }
        // r = round(mant * 2^exp * 10^17) = round(mant * 5^17 * 2^(exp + 17)).
        let mut n = Big::from_u128(u128::from(self.mant));
        n.mul_pow5(17);
        let e = self.exp + 17;
        let r = if e >= 0 {
            n.shl(e as u64)
        } else {
            let s = (-e) as u64;
            let mut q = n.shr(s);
            let half = n.bit(s - 1);
            if half && (n.any_below(s - 1) || q.bit(0)) {
                q.add_small(1);
            }
            q
        };
        let digits = format!("{:0>18}", r.to_decimal());
        let (int, frac) = digits.split_at(digits.len() - 17);
        let frac = frac.trim_end_matches('0');
        let mut out = String::with_capacity(digits.len() + 2);
        if self.neg {
            out.push('-');
        }
        out.push_str(int);
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        if out == "-0" {
            out.remove(0);
        }
        out
    }

    fn to_f64(self) -> f64 {
        let sign = if self.neg { -1.0 } else { 1.0 };
        match round(
            &Big::from_u128(u128::from(self.mant)),
            self.exp,
            false,
            &BINARY64,
        ) {
            None => sign * f64::INFINITY,
            Some((0, _)) => sign * 0.0,
            Some((m, e)) => {
                let bits = if m < 1 << 52 {
                    m // subnormal: e == -1074
                } else {
                    (((e + 1075) as u64) << 52) | (m & ((1 << 52) - 1))
                };
                sign * f64::from_bits(bits)
            }
        }
    }
}

/// Redis' MAX_LONG_DOUBLE_CHARS: longer inputs are not numbers.
const MAX_LD_CHARS: usize = 5 * 1024;

/// Parses `s` like Redis' `string2ld`: the whole input must be a `strtold` number in the C
/// locale (decimal, hexadecimal `0x..p..`, `inf`/`infinity`; no leading whitespace, no NaN),
/// and neither overflow nor underflow to zero is accepted.
pub(crate) fn parse_ld(s: &[u8]) -> Option<Ld> {
    if s.is_empty() || s.len() >= MAX_LD_CHARS {
        return None;
    }
    // C isspace(): space, \t, \n, \v, \f, \r.
    if matches!(s[0], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r') {
        return None;
    }
    let (neg, rest) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest.eq_ignore_ascii_case(b"inf") || rest.eq_ignore_ascii_case(b"infinity") {
        return Some(Ld::Inf { neg });
    }
    let v = if rest.len() > 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        parse_hex(neg, &rest[2..])?
    } else {
        parse_dec(neg, rest)?
    };
    Some(Ld::Finite(v))
}

/// Reads an optionally signed decimal exponent that must run to the end of `s`, saturating
/// far outside any representable range.
fn parse_exponent(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits.iter().fold(0i64, |acc, &d| {
        (acc * 10 + i64::from(d - b'0')).min(1_000_000_000)
    });
    Some(if neg { -v } else { v })
}

fn parse_dec(neg: bool, s: &[u8]) -> Option<F80> {
    let mut i = 0;
    let mut digits: Vec<u8> = Vec::new();
    let mut frac = 0i64;
    while i < s.len() && s[i].is_ascii_digit() {
        digits.push(s[i] - b'0');
        i += 1;
    }
    if i < s.len() && s[i] == b'.' {
        i += 1;
        while i < s.len() && s[i].is_ascii_digit() {
            digits.push(s[i] - b'0');
            frac += 1;
            i += 1;
        }
    }
    if digits.is_empty() {
        return None;
    }
    let mut exp = 0i64;
    if i < s.len() {
        if s[i] | 0x20 != b'e' {
            return None;
        }
        exp = parse_exponent(&s[i + 1..])?;
    }
    // value = D * 10^k with D's leading and trailing zeros removed.
    let first = digits.iter().position(|&d| d != 0);
    let Some(first) = first else {
        return Some(F80 { neg, ..F80::ZERO });
    };
    let last = digits.iter().rposition(|&d| d != 0).unwrap_or(first);
    let k = exp - frac + (digits.len() - 1 - last) as i64;
    let d = &digits[first..=last];
    let nd = d.len() as i64;
    // D*10^k lies in [10^(nd-1+k), 10^(nd+k)). Above 10^4933 overflows (max ~1.19e4932);
    // below 10^-4951 rounds to zero (half the smallest subnormal is ~1.8e-4951).
    if nd - 1 + k > 4932 || nd + k <= -4951 {
        return None;
    }
    let mut n = Big::zero();
    for chunk in d.chunks(9) {
        let v = chunk.iter().fold(0u32, |acc, &x| acc * 10 + u32::from(x));
        n.mul_small(10u32.pow(chunk.len() as u32));
        n.add_small(v);
    }
    let r = if k >= 0 {
        n.mul_pow5(k as u64);
        round(&n.shl(k as u64), 0, false, &X87)
    } else {
        // D / 10^j = D / 5^j * 2^-j. Scale so the quotient has about 68 bits, enough for
        // rounding to 64 bits plus a guard and a sticky bit.
        let j = (-k) as u64;
        let mut p = Big::from_u128(1);
        p.mul_pow5(j);
        let diff = n.bit_len() as i64 - p.bit_len() as i64 - 68;
        let (num, den) = if diff < 0 {
            (n.shl((-diff) as u64), p)
        } else {
            (n, p.shl(diff as u64))
        };
        let (q, inexact) = div_short_quotient(&num, &den);
        round(&Big::from_u128(q), diff - j as i64, inexact, &X87)
    };
    finite(neg, r)
}

fn parse_hex(neg: bool, s: &[u8]) -> Option<F80> {
    let mut i = 0;
    let mut n = Big::zero();
    let mut any = false;
    let mut frac = 0i64;
    let hex = |c: u8| (c as char).to_digit(16);
    while let Some(v) = s.get(i).and_then(|&c| hex(c)) {
        n.mul_small(16);
        n.add_small(v);
        any = true;
        i += 1;
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        while let Some(v) = s.get(i).and_then(|&c| hex(c)) {
            n.mul_small(16);
            n.add_small(v);
            any = true;
            frac += 1;
            i += 1;
        }
    }
    if !any {
        return None;
    }
    let mut exp = 0i64;
    if i < s.len() {
        if s[i] | 0x20 != b'p' {
            return None;
        }
        exp = parse_exponent(&s[i + 1..])?;
    }
    if n.is_zero() {
        return Some(F80 { neg, ..F80::ZERO });
    }
    let e = exp - 4 * frac;
    let top = n.bit_len() as i64 - 1 + e;
    if !(-16447..=16383).contains(&top) {
        return None;
    }
    finite(neg, round(&n, e, false, &X87))
}

/// Overflow (None) and underflow to zero are both rejected, like `string2ld` rejects ERANGE
/// with a result of HUGE_VAL or zero.
fn finite(neg: bool, r: Option<(u64, i64)>) -> Option<F80> {
    match r? {
        (0, _) => None,
        r => Some(F80::from_rounded(neg, r)),
    }
}

/// The x87 value an `f64` increment stands for. The increment was typed as decimal text and
/// carried as the nearest `f64`; its shortest round-trip decimal form recovers that text for
/// any input of up to 15 significant digits, and is then parsed like Redis parses the text.
pub(crate) fn ld_from_f64(d: f64) -> Option<Ld> {
    if d.is_nan() {
        None
    } else if d.is_infinite() {
        Some(Ld::Inf { neg: d < 0.0 })
    } else {
        parse_ld(format!("{d:e}").as_bytes())
    }
}

/// Validates an INCRBYFLOAT increment like Redis (`string2ld`) and returns the nearest `f64`
/// (±infinity for `inf` and for finite values beyond `f64`'s range, which then fail with
/// "increment would produce NaN or Infinity"). None: `ERR value is not a valid float`.
pub fn parse_float_arg(s: &[u8]) -> Option<f64> {
    match parse_ld(s)? {
        Ld::Inf { neg: true } => Some(f64::NEG_INFINITY),
        Ld::Inf { neg: false } => Some(f64::INFINITY),
        Ld::Finite(v) => {
            let text = std::str::from_utf8(s).ok()?;
            let is_hex = text.bytes().any(|c| c | 0x20 == b'x');
            // std's parser is correctly rounded for decimal text; hex goes through the x87
            // value (exact for every hex input that fits in 64 bits).
            match text.parse::<f64>() {
                Ok(f) if !is_hex => Some(f),
                _ => Some(v.to_f64()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incr(value: &str, delta: &str) -> Option<String> {
        let Some(Ld::Finite(a)) = parse_ld(value.as_bytes()) else {
            return None;
        };
        let Some(Ld::Finite(b)) = parse_ld(delta.as_bytes()) else {
            return None;
        };
        F80::add(a, b).map(F80::format_human)
    }

    /// Expected strings observed on Redis 7.0.15, x86-64 (`SET k a; INCRBYFLOAT k b`).
    #[test]
    fn matches_redis_x86() {
        let cases = [
            ("10.5", "0.1", "10.6"),
            ("0.1", "0.2", "0.3"),
            ("5.0e3", "2.0e2", "5200"),
            ("0.000003814697265625", "0", "0.00000381469726562"), // tie -> even
            ("0.000003814697265635", "0", "0.00000381469726563"),
            ("1e20", "1", "100000000000000000000"),
            ("0x10", "1", "17"),
            ("1", "-1e-30", "1"),
            ("1", "+1.5", "2.5"),
            ("3", "-3", "0"),
            ("-1", "0.99999999999999999999", "0"),
            ("-0.1", "0.1", "0"),
            ("0", "0e-5000", "0"),
            ("10.6", "-5", "5.6"),
            ("17179869184", "1.5", "17179869185.5"),
            ("1", "-1.1", "-0.1"),
        ];
        for (a, b, want) in cases {
            assert_eq!(incr(a, b).as_deref(), Some(want), "{a} + {b}");
        }
        // 1 + 1e400 is finite in 80 bits; the start of Redis' 401-digit answer.
        let big = incr("1", "1e400").unwrap();
        assert_eq!(big.len(), 401);
        assert!(big.starts_with("10000000000000000000281880683947586514586453433629"));
        let huge = incr("1e4000", "1").unwrap();
        assert!(huge.starts_with("99999999999999999999654638730996237849324925835069"));
        assert_eq!(huge.len(), 4000); // 1e4000 rounds to just below 10^4000
    }

    #[test]
    fn rejects_like_string2ld() {
        for s in [
            "", " 1", "1 ", "\t1", "abc", "1\u{0}2", "\u{0}", "nan", "-nan", "1e", "1e+", ".",
            "e5", "0x", "0xg", "0x1p", "1e-5000", "1e5000", "--1", "1.2.3", "infinit",
        ] {
            assert_eq!(parse_ld(s.as_bytes()), None, "{s:?}");
        }
        assert_eq!(parse_ld(&vec![b'1'; MAX_LD_CHARS]), None);
        assert!(parse_ld(&vec![b'1'; MAX_LD_CHARS - 1]).is_none()); // ~1e5119 overflows
        assert!(matches!(
            parse_ld(b"Infinity"),
            Some(Ld::Inf { neg: false })
        ));
        assert!(matches!(parse_ld(b"-INF"), Some(Ld::Inf { neg: true })));
        for s in [
            "1.", ".5", "+.5e1", "0x1.8p1", "0X.8P-1", "00012", "1E+05", "-0",
        ] {
            assert!(matches!(parse_ld(s.as_bytes()), Some(Ld::Finite(_))), "{s}");
        }
    }

    #[test]
    fn subnormals_and_extremes() {
        // Smallest x87 subnormal is 2^-16445 ~ 3.6452e-4951: accepted; far below: rejected.
        let Some(Ld::Finite(v)) = parse_ld(b"3.6452e-4951") else {
            panic!("subnormal rejected");
        };
        assert_eq!((v.mant, v.exp), (1, -16445));
        assert_eq!(parse_ld(b"1e-4952"), None);
        // Largest finite ~1.18973e4932 is fine, 1.2e4932 overflows.
        assert!(parse_ld(b"1.18973e4932").is_some());
        assert_eq!(parse_ld(b"1.2e4932"), None);
        let max = F80 {
            neg: false,
            mant: u64::MAX,
            exp: 16320,
        };
        assert_eq!(F80::add(max, max), None);
    }

    #[test]
    fn f64_bridge() {
        assert_eq!(parse_float_arg(b"0.1"), Some(0.1));
        assert_eq!(parse_float_arg(b"1e400"), Some(f64::INFINITY));
        assert_eq!(parse_float_arg(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float_arg(b"0x1.8p1"), Some(3.0));
        assert_eq!(parse_float_arg(b"nan"), None);
        // The shortest form of the f64 recovers the typed decimal.
        let a = parse_ld(b"10.5").unwrap();
        let Some(Ld::Finite(b)) = ld_from_f64(0.1) else {
            panic!()
        };
        let Ld::Finite(a) = a else { panic!() };
        assert_eq!(F80::add(a, b).unwrap().format_human(), "10.6");
        assert_eq!(ld_from_f64(f64::NAN), None);
        assert_eq!(
            F80 {
                neg: true,
                mant: 3,
                exp: -1
            }
            .to_f64(),
            -1.5
        );
        assert_eq!(
            F80 {
                neg: false,
                mant: 1,
                exp: -1074
            }
            .to_f64(),
            5e-324
        );
    }

    #[test]
    fn big_arithmetic() {
        let mut n = Big::from_u128(1);
        n.mul_pow5(30);
        assert_eq!(n.to_decimal(), "931322574615478515625");
        let m = n.shl(70).shr(70);
        assert_eq!(m, n);
        assert_eq!(n.add(&n).sub(&n), n);
        let (q, inexact) = div_short_quotient(&Big::from_u128(100), &Big::from_u128(7));
        assert_eq!((q, inexact), (14, true));
    }
}
