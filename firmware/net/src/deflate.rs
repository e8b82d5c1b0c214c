//! Raw DEFLATE (RFC 1951) over a connection, as IMAP COMPRESS=DEFLATE
//! (RFC 4978) needs: every flush of replies ends in a sync flush so the
//! client can read them at once; input is inflated in bounded steps so a
//! small compressed message cannot blow up into gigabytes at once.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Most bytes inflated per step.
const MAX_INFLATE_STEP: usize = 256 * 1024;

pub(crate) struct Deflate {
    inflate: Decompress,
    deflate: Compress,
    /// Compressed bytes read from the socket, not inflated yet.
    pub(crate) raw: Vec<u8>,
}

impl Deflate {
    pub(crate) fn new(pending: Vec<u8>) -> Deflate {
        Deflate {
            inflate: Decompress::new(false),
            deflate: Compress::new(Compression::fast(), false),
            raw: pending,
        }
    }

    /// Inflates buffered input into `out`; returns the bytes produced.
    pub(crate) fn inflate(&mut self, out: &mut Vec<u8>) -> std::io::Result<usize> {
        let before_out = self.inflate.total_out();
        let before_in = self.inflate.total_in();
        out.reserve(MAX_INFLATE_STEP);
        let status = self
            .inflate
            .decompress_vec(&self.raw, out, FlushDecompress::Sync)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let used = (self.inflate.total_in() - before_in) as usize;
        self.raw.drain(..used);
        if status == Status::StreamEnd {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "compressed stream ended",
            ));
        }
        Ok((self.inflate.total_out() - before_out) as usize)
    }

    /// Compresses `data` with a sync flush.
    pub(crate) fn deflate(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let mut consumed = 0usize;
        loop {
            out.reserve(data.len().saturating_sub(consumed) / 2 + 1024);
            let before_in = self.deflate.total_in();
            self.deflate
                .compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            consumed += (self.deflate.total_in() - before_in) as usize;
            // Done when all input is taken and the flush fitted.
            if consumed == data.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounded_steps() {
        let mut server = Deflate::new(Vec::new());
        let mut client = Deflate::new(Vec::new());
        let text = b"a1 FETCH 1:* (FLAGS)\r\n".repeat(10);
        client.raw = {
            let mut c = Deflate::new(Vec::new());
            c.deflate(&text).unwrap()
        };
        let mut out = Vec::new();
        while !client.raw.is_empty() {
            client.inflate(&mut out).unwrap();
        }
        assert_eq!(out, text);
        // A bomb: a megabyte of zeros inflates in bounded steps.
        let bomb = server.deflate(&vec![0u8; 4 << 20]).unwrap();
        assert!(bomb.len() < 64 * 1024);
        let mut victim = Deflate::new(bomb);
        let mut out = Vec::new();
        let step = victim.inflate(&mut out).unwrap();
        assert!(step <= MAX_INFLATE_STEP + 64 * 1024, "{step}");
    }
}
