/* Streams a 16-kHz mono 16-bit WAV file through the sotto C API in 100-ms pieces (as a
 * microphone callback would hand them over), polling after each push; prints each word
 * as it is confirmed, with its time, and the confirmed text at the end. Also checks that
 * a freed stream is an error, not a crash.
 *
 *   stream MODEL.sotto AUDIO.wav [THREADS]
 *
 * Exits 0 only if everything succeeded and every handle was freed. */
#include "sotto.h"
#include "wav.h"

static int failed(const char *what, SottoStatus status) {
    fprintf(stderr, "%s failed (status %d): %s\n", what, (int)status, sotto_last_error());
    return 1;
}

/* Appends the update's confirmed words to `text` (capacity `cap`). */
static void take(const SottoStreamUpdate *u, char *text, size_t cap) {
    for (size_t i = 0; i < u->n_confirmed; i++) {
        const SottoStreamWord *w = &u->confirmed_words[i];
        fprintf(stderr, "  [%6.2f -> %6.2f] %s\n", w->start_ms / 1000.0, w->end_ms / 1000.0,
                w->text);
        size_t len = strlen(text);
        snprintf(text + len, cap - len, "%s%s", len ? " " : "", w->text);
    }
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
    SottoLoadOptions options = sotto_load_options_default();
    options.threads = argc > 3 ? (uint32_t)atoi(argv[3]) : 0;
    SottoModel model;
    SottoStatus s = sotto_model_load(argv[1], &options, &model);
    if (s != SOTTO_STATUS_OK) return failed("sotto_model_load", s);
    SottoParams params;
    if ((s = sotto_params_new(&params)) != SOTTO_STATUS_OK) return failed("sotto_params_new", s);
    sotto_params_set_language(params, "en");

    SottoStreamOptions so = sotto_stream_options_default();
    SottoStream stream;
    if ((s = sotto_stream_new(model, &so, params, &stream)) != SOTTO_STATUS_OK)
        return failed("sotto_stream_new", s);
    /* The stream holds the model and copied the parameters: both may go now. */
    sotto_params_free(params);
    sotto_model_free(model);

    char text[4096] = "";
    SottoStreamUpdate u;
    size_t piece = 1600;
    for (size_t at = 0; at < n; at += piece) {
        size_t len = n - at < piece ? n - at : piece;
        if ((s = sotto_stream_push(stream, samples + at, len)) != SOTTO_STATUS_OK)
            return failed("sotto_stream_push", s);
        if ((s = sotto_stream_poll(stream, &u)) != SOTTO_STATUS_OK)
            return failed("sotto_stream_poll", s);
        take(&u, text, sizeof text);
    }
    free(samples);
    if ((s = sotto_stream_finish(stream)) != SOTTO_STATUS_OK)
        return failed("sotto_stream_finish", s);
    if ((s = sotto_stream_poll(stream, &u)) != SOTTO_STATUS_OK)
        return failed("sotto_stream_poll", s);
    take(&u, text, sizeof text);
    printf("%s\n", text);

    int status = 0;
    if (sotto_stream_push(stream, NULL, 0) != SOTTO_STATUS_INVALID_ARGUMENT) {
        fprintf(stderr, "a push after finish was not refused\n");
        status = 1;
    }
    sotto_stream_free(stream);
    if (sotto_stream_poll(stream, &u) != SOTTO_STATUS_INVALID_HANDLE || u.confirmed != NULL) {
        fprintf(stderr, "a freed stream was not refused\n");
        status = 1;
    }
    if (sotto_stream_free(stream) != SOTTO_STATUS_INVALID_HANDLE) {
        fprintf(stderr, "a double free was not refused\n");
        status = 1;
    }
    size_t live = sotto_live_objects();
    if (live != 0) {
        fprintf(stderr, "%zu sotto handles or strings were not freed\n", live);
        status = 1;
    }
    return status;
}
