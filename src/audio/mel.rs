//! Whisper's log-mel spectrogram (docs: ../shared/REFERENCE.md §2).

/// Slaney-style mel filter bank, `n_mels` rows of `N_FFT/2 + 1` weights (16 kHz).
pub fn mel_filter_bank(n_mels: usize) -> Vec<f32> {
    let _ = n_mels;
    unimplemented!()
}

/// Log-mel spectrogram of `samples` (16 kHz mono) followed by `padding` zero samples.
/// Returns `n_mels × n_frames` (row-major, one row per mel band) and `n_frames`,
/// scaled as Whisper expects: log10, floor at max − 8, then (x + 4) / 4.
pub fn log_mel_spectrogram(
    samples: &[f32],
    padding: usize,
    filters: &[f32],
    n_mels: usize,
) -> (Vec<f32>, usize) {
    let _ = (samples, padding, filters, n_mels);
    unimplemented!()
}
