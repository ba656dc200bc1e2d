//! Byte-level mutations in the style of libFuzzer's, for the stable suite's bounded random run.

/// Bytes that mean something to a DNS decoder: label limits, pointer tags, and counts.
const INTERESTING: &[u8] = &[0, 1, 0x0c, 0x29, 0x3f, 0x40, 0x7f, 0x80, 0xbf, 0xc0, 0xff];

/// Mutated inputs are cut to this length: past a UDP datagram, more bytes find nothing new.
pub const MAX_INPUT: usize = 8192;

/// Mutates inputs of a pool with a fixed-seed generator, so a run is the same every time.
pub struct Mutator<'d> {
    rng: fastrand::Rng,
    dictionary: &'d [&'d [u8]],
}

impl<'d> Mutator<'d> {
    /// `dictionary` holds tokens worth inserting (`{`, `import`, `\xc0\x0c` ...).
    pub fn new(seed: u64, dictionary: &'d [&'d [u8]]) -> Mutator<'d> {
        Mutator { rng: fastrand::Rng::with_seed(seed), dictionary }
    }

    /// A new input: one to four mutations of a random member of `pool` (which must not be empty).
    pub fn mutate(&mut self, pool: &[Vec<u8>]) -> Vec<u8> {
        let mut data = pool[self.rng.usize(..pool.len())].clone();
        for _ in 0..self.rng.usize(1..=4) {
            self.once(&mut data, pool);
        }
        data.truncate(MAX_INPUT);
        data
    }

    fn once(&mut self, data: &mut Vec<u8>, pool: &[Vec<u8>]) {
        let r = &mut self.rng;
        let at = |r: &mut fastrand::Rng, len: usize| r.usize(..=len);
        match r.u8(..10) {
            // Flip a bit.
            0 if !data.is_empty() => {
                let i = r.usize(..data.len());
                data[i] ^= 1 << r.u8(..8);
            }
            // Set a byte to something meaningful, or anything.
            1 if !data.is_empty() => {
                let i = r.usize(..data.len());
                data[i] = if r.bool() { INTERESTING[r.usize(..INTERESTING.len())] } else { r.u8(..) };
            }
            // Insert a dictionary token.
            2 | 3 if !self.dictionary.is_empty() => {
                let token = self.dictionary[r.usize(..self.dictionary.len())];
                let i = at(r, data.len());
                data.splice(i..i, token.iter().copied());
            }
            // Delete a range.
            4 if !data.is_empty() => {
                let i = r.usize(..data.len());
                let n = r.usize(1..=(data.len() - i).min(16));
                data.drain(i..i + n);
            }
            // Duplicate a range somewhere else.
            5 if !data.is_empty() => {
                let i = r.usize(..data.len());
                let n = r.usize(1..=(data.len() - i).min(64));
                let chunk: Vec<u8> = data[i..i + n].to_vec();
                let j = at(r, data.len());
                data.splice(j..j, chunk);
            }
            // Truncate.
            6 if !data.is_empty() => {
                let n = r.usize(..data.len());
                data.truncate(n);
            }
            // Splice in part of another input.
            7 => {
                let other = &pool[r.usize(..pool.len())];
                if !other.is_empty() {
                    let i = r.usize(..other.len());
                    let n = r.usize(1..=(other.len() - i));
                    let j = at(r, data.len());
                    data.splice(j..j, other[i..i + n].iter().copied());
                }
            }
            // Overwrite a 16-bit field (DNS counts, lengths) with a boundary value.
            8 if data.len() >= 2 => {
                let i = r.usize(..data.len() - 1);
                let v: u16 = [0, 1, 2, 0xff, 0x100, 0x7fff, 0xffff, r.u16(..)][r.usize(..8)];
                data[i..i + 2].copy_from_slice(&v.to_be_bytes());
            }
            // Insert random bytes.
            _ => {
                let i = at(r, data.len());
                let n = r.usize(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| r.u8(..)).collect();
                data.splice(i..i, bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_repeat_with_the_seed_and_vary_without() {
        let pool = vec![b". {\n whoami\n}\n".to_vec(), b"example.org".to_vec()];
        let dict: &[&[u8]] = &[b"{", b"import"];
        let run = |seed| {
            let mut m = Mutator::new(seed, dict);
            (0..50).map(|_| m.mutate(&pool)).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        let empty_pool = vec![Vec::new()];
        let mut m = Mutator::new(3, &[]);
        for _ in 0..200 {
            m.mutate(&empty_pool);
        }
    }
}
