/* A minimal reader for 16-bit PCM WAV files at 16 kHz mono: what the examples
 * need to hand sotto raw samples (sotto_transcribe_file decodes anything else). */
#ifndef SOTTO_EXAMPLE_WAV_H
#define SOTTO_EXAMPLE_WAV_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t wav_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t wav_u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* The samples scaled to [-1, 1], malloc'd (the caller frees them), or NULL. */
static float *wav_read(const char *path, size_t *n_samples) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char head[12], chunk[8], fmt[16];
    float *out = NULL;
    int format_ok = 0;
    if (fread(head, 1, 12, f) != 12 || memcmp(head, "RIFF", 4) || memcmp(head + 8, "WAVE", 4))
        goto done;
    while (fread(chunk, 1, 8, f) == 8) {
        uint32_t size = wav_u32(chunk + 4);
        if (!memcmp(chunk, "fmt ", 4) && size >= 16) {
            if (fread(fmt, 1, 16, f) != 16) goto done;
            format_ok = wav_u16(fmt) == 1 && wav_u16(fmt + 2) == 1 &&
                        wav_u32(fmt + 4) == 16000 && wav_u16(fmt + 14) == 16;
            if (fseek(f, (long)(size - 16 + (size & 1)), SEEK_CUR)) goto done;
        } else if (!memcmp(chunk, "data", 4) && format_ok) {
            size_t n = size / 2;
            int16_t *pcm = malloc(n * sizeof *pcm + 1);
            out = malloc(n * sizeof *out + 1);
            if (!pcm || !out || fread(pcm, 2, n, f) != n) {
                free(pcm);
                free(out);
                out = NULL;
                goto done;
            }
            for (size_t i = 0; i < n; i++) out[i] = pcm[i] / 32768.0f; /* little-endian hosts */
            free(pcm);
            *n_samples = n;
            goto done;
        } else if (fseek(f, (long)(size + (size & 1)), SEEK_CUR)) {
            goto done;
        }
    }
done:
    fclose(f);
    return out;
}

#endif
