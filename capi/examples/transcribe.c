/* Transcribes a 16-kHz mono 16-bit WAV file with the sotto C API and prints its
 * segments: as they are decoded (segment callback) and from the result.
 * Without -DSOTTO_PCM_ONLY it also transcribes the file through sotto's own audio
 * decoding and checks that both texts agree.
 *
 *   transcribe MODEL.sotto AUDIO.wav [THREADS]
 *
 * Exits 0 only if everything succeeded and every handle and string was freed. */
#include "sotto.h"
#include "wav.h"

static int32_t on_segment(const SottoSegment *s, void *user) {
    (void)user;
    fprintf(stderr, "  (heard %.2f s) %s\n", s->end_ms / 1000.0, s->text);
    return 0;
}

static int failed(const char *what, SottoStatus status) {
    fprintf(stderr, "%s failed (status %d): %s\n", what, (int)status, sotto_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.sotto AUDIO.wav [THREADS]\n", argv[0]);
        return 2;
    }
    size_t n = 0;
    float *samples = wav_read(argv[2], &n);
    if (!samples) {
        fprintf(stderr, "%s: not a 16-kHz mono 16-bit WAV file\n", argv[2]);
        return 1;
    }
    fprintf(stderr, "sotto %s, %.2f s of audio\n", sotto_version(), n / 16000.0);

    SottoLoadOptions options = sotto_load_options_default();
    options.threads = argc > 3 ? (uint32_t)atoi(argv[3]) : 0;
    SottoModel model;
    SottoStatus s = sotto_model_load(argv[1], &options, &model);
    if (s != SOTTO_STATUS_OK) return failed("sotto_model_load", s);
    const char *kernels = "";
    sotto_model_kernels(model, &kernels);
    fprintf(stderr, "kernels: %s\n", kernels);

    SottoParams params;
    if ((s = sotto_params_new(&params)) != SOTTO_STATUS_OK) return failed("sotto_params_new", s);
    sotto_params_set_language(params, "en");
    sotto_params_set_segment_callback(params, on_segment, NULL);

    SottoResult result;
    s = sotto_transcribe(model, samples, n, params, &result);
    free(samples);
    if (s != SOTTO_STATUS_OK) return failed("sotto_transcribe", s);

    size_t count = 0;
    sotto_result_segment_count(result, &count);
    for (size_t i = 0; i < count; i++) {
        SottoSegment seg;
        if ((s = sotto_result_segment(result, i, &seg)) != SOTTO_STATUS_OK)
            return failed("sotto_result_segment", s);
        printf("[%7.2f -> %7.2f] %s\n", seg.start_ms / 1000.0, seg.end_ms / 1000.0, seg.text);
    }

    int status = 0;
#ifndef SOTTO_PCM_ONLY
    SottoResult from_file;
    s = sotto_transcribe_file(model, argv[2], params, &from_file);
    if (s != SOTTO_STATUS_OK) return failed("sotto_transcribe_file", s);
    const char *a, *b;
    sotto_result_text(result, &a);
    sotto_result_text(from_file, &b);
    if (strcmp(a, b) != 0) {
        fprintf(stderr, "the file and the PCM gave different texts:\n%s\n%s\n", a, b);
        status = 1;
    }
    sotto_result_free(from_file);
#endif

    sotto_result_free(result);
    sotto_params_free(params);
    sotto_model_free(model);
    size_t live = sotto_live_objects();
    if (live != 0) {
        fprintf(stderr, "%zu sotto handles or strings were not freed\n", live);
        status = 1;
    }
    return status;
}
