/* The C API's failure paths, each checked for its status: NULL arguments, bad
 * paths and values, null / freed / double-freed / wrong-kind handles, a
 * progress callback that aborts, and an abort handle triggered from another
 * thread while a transcription runs.
 *
 *   errors MODEL.sotto AUDIO.wav       (16-kHz mono 16-bit WAV, e.g. jfk.wav)
 *
 * Exits 0 only if every check held and nothing was left allocated. */
#include "sotto.h"
#include "wav.h"
#include <pthread.h>

static int failures = 0;

#define EXPECT(call, want)                                                                 \
    do {                                                                                   \
        SottoStatus got_ = (call);                                                         \
        if (got_ != (want)) {                                                              \
            fprintf(stderr, "%s:%d: %s gave %d, want %s (%d): %s\n", __FILE__, __LINE__,  \
                    #call, (int)got_, #want, (int)(want), sotto_last_error());             \
            failures++;                                                                    \
        } else if (got_ != SOTTO_STATUS_OK && sotto_last_error()[0] == '\0') {            \
            fprintf(stderr, "%s:%d: %s failed without a message\n", __FILE__, __LINE__,    \
                    #call);                                                                \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: %s does not hold\n", __FILE__, __LINE__, #cond);       \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

static int32_t stop_at_first_progress(double done, double total, void *user) {
    (void)done;
    (void)total;
    ++*(int *)user;
    return 1;
}

/* The worker's first segment callback waits here until the main thread has
 * triggered the abort handle. */
struct handshake {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int reached, triggered;
};

static int32_t wait_for_trigger(const SottoSegment *seg, void *user) {
    (void)seg;
    struct handshake *h = user;
    pthread_mutex_lock(&h->lock);
    h->reached = 1;
    pthread_cond_broadcast(&h->cond);
    while (!h->triggered) pthread_cond_wait(&h->cond, &h->lock);
    pthread_mutex_unlock(&h->lock);
    return 0;
}

struct job {
    SottoModel model;
    SottoParams params;
    const float *samples;
    size_t n;
    SottoStatus status;
    SottoResult result;
};

static void *transcribe_job(void *arg) {
    struct job *j = arg;
    j->status = sotto_transcribe(j->model, j->samples, j->n, j->params, &j->result);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.sotto AUDIO.wav\n", argv[0]);
        return 2;
    }
    size_t n = 0;
    float *one = wav_read(argv[2], &n);
    if (!one) {
        fprintf(stderr, "%s: not a 16-kHz mono 16-bit WAV file\n", argv[2]);
        return 1;
    }
    /* Three times over: two windows, so an abort after the first stops the second. */
    float *three = malloc(3 * n * sizeof *three);
    for (int k = 0; k < 3; k++) memcpy(three + k * n, one, n * sizeof *one);

    CHECK(sotto_version()[0] != '\0');

    /* Loading. */
    SottoModel model = {7};
    EXPECT(sotto_model_load(NULL, NULL, &model), SOTTO_STATUS_NULL_ARGUMENT);
    CHECK(model.id == 0);
    EXPECT(sotto_model_load(argv[1], NULL, NULL), SOTTO_STATUS_NULL_ARGUMENT);
    EXPECT(sotto_model_load("/nonexistent/model.sotto", NULL, &model), SOTTO_STATUS_IO);
    CHECK(strstr(sotto_last_error(), "/nonexistent/model.sotto") != NULL);
    EXPECT(sotto_model_load(argv[2], NULL, &model), SOTTO_STATUS_FORMAT); /* a WAV file */
    EXPECT(sotto_model_load("\xff\xfe", NULL, &model), SOTTO_STATUS_INVALID_ARGUMENT);
    SottoLoadOptions options = sotto_load_options_default();
    options.device = 42;
    EXPECT(sotto_model_load(argv[1], &options, &model), SOTTO_STATUS_INVALID_ARGUMENT);
    options = sotto_load_options_default();
    options.kernels = "no-such-kernels";
    EXPECT(sotto_model_load(argv[1], &options, &model), SOTTO_STATUS_INVALID_ARGUMENT);
    options = sotto_load_options_default();
    options.threads = 2;
    EXPECT(sotto_model_load(argv[1], &options, &model), SOTTO_STATUS_OK);

    /* Parameters. */
    SottoParams params;
    EXPECT(sotto_params_new(&params), SOTTO_STATUS_OK);
    EXPECT(sotto_params_set_task(params, 3), SOTTO_STATUS_INVALID_ARGUMENT);
    EXPECT(sotto_params_set_language(params, ""), SOTTO_STATUS_INVALID_ARGUMENT);
    float temps[] = {0.0f, -1.0f};
    EXPECT(sotto_params_set_temperatures(params, temps, 2), SOTTO_STATUS_INVALID_ARGUMENT);
    EXPECT(sotto_params_set_temperatures(params, temps, 0), SOTTO_STATUS_INVALID_ARGUMENT);
    EXPECT(sotto_params_set_temperatures(params, temps, 1), SOTTO_STATUS_OK);
    EXPECT(sotto_params_set_thresholds(params, 2.4f, -1.0f, 0.6f), SOTTO_STATUS_OK);
    EXPECT(sotto_params_set_language(params, "en"), SOTTO_STATUS_OK);
    SottoParams spare;
    EXPECT(sotto_params_new(&spare), SOTTO_STATUS_OK);
    EXPECT(sotto_params_free(spare), SOTTO_STATUS_OK);
    EXPECT(sotto_params_free(spare), SOTTO_STATUS_INVALID_HANDLE); /* double free */
    EXPECT(sotto_params_set_seed(spare, 1), SOTTO_STATUS_INVALID_HANDLE); /* stale */

    /* Null, stale and wrong-kind handles. */
    SottoResult result = {9};
    SottoModel null_model = {0}, wrong_kind = {params.id};
    EXPECT(sotto_transcribe(null_model, one, n, params, &result), SOTTO_STATUS_INVALID_HANDLE);
    CHECK(result.id == 0);
    EXPECT(sotto_transcribe(wrong_kind, one, n, params, &result), SOTTO_STATUS_INVALID_HANDLE);
    EXPECT(sotto_model_free(wrong_kind), SOTTO_STATUS_INVALID_HANDLE); /* params survive */
    EXPECT(sotto_params_set_seed(params, 3), SOTTO_STATUS_OK);
    EXPECT(sotto_transcribe(model, NULL, 5, params, &result), SOTTO_STATUS_NULL_ARGUMENT);
    EXPECT(sotto_transcribe_file(model, "/nonexistent.wav", params, &result), SOTTO_STATUS_AUDIO);
    SottoResult null_result = {0};
    size_t count = 99;
    EXPECT(sotto_result_segment_count(null_result, &count), SOTTO_STATUS_INVALID_HANDLE);
    CHECK(count == 0);
    EXPECT(sotto_result_free(null_result), SOTTO_STATUS_INVALID_HANDLE);
    EXPECT(sotto_abort_trigger((SottoAbort){0}), SOTTO_STATUS_INVALID_HANDLE);

    /* A good transcription, its result and strings freed twice. */
    EXPECT(sotto_transcribe(model, one, n, params, &result), SOTTO_STATUS_OK);
    EXPECT(sotto_result_segment_count(result, &count), SOTTO_STATUS_OK);
    CHECK(count >= 1);
    SottoSegment seg;
    EXPECT(sotto_result_segment(result, count, &seg), SOTTO_STATUS_INVALID_ARGUMENT);
    EXPECT(sotto_result_segment(result, 0, NULL), SOTTO_STATUS_NULL_ARGUMENT);
    char *json = NULL;
    EXPECT(sotto_result_format(result, SOTTO_FORMAT_JSON, &json), SOTTO_STATUS_OK);
    CHECK(json && strstr(json, "\"segments\"") != NULL);
    EXPECT(sotto_string_free(json), SOTTO_STATUS_OK);
    EXPECT(sotto_string_free(json), SOTTO_STATUS_INVALID_HANDLE); /* double free */
    char mine[] = "not sotto's";
    EXPECT(sotto_string_free(mine), SOTTO_STATUS_INVALID_HANDLE);
    EXPECT(sotto_result_free(result), SOTTO_STATUS_OK);
    EXPECT(sotto_result_free(result), SOTTO_STATUS_INVALID_HANDLE);
    const char *text = "x";
    EXPECT(sotto_result_text(result, &text), SOTTO_STATUS_INVALID_HANDLE);
    CHECK(text == NULL);

    /* A progress callback returning nonzero stops before the second window. */
    int calls = 0;
    EXPECT(sotto_params_set_progress_callback(params, stop_at_first_progress, &calls),
           SOTTO_STATUS_OK);
    EXPECT(sotto_transcribe(model, three, 3 * n, params, &result), SOTTO_STATUS_ABORTED);
    CHECK(calls == 1 && result.id == 0);
    EXPECT(sotto_params_set_progress_callback(params, NULL, NULL), SOTTO_STATUS_OK);

    /* An abort handle: triggered before, reset, then triggered from this thread
     * while another transcribes. */
    SottoAbort abort_handle;
    EXPECT(sotto_abort_new(&abort_handle), SOTTO_STATUS_OK);
    EXPECT(sotto_params_set_abort(params, abort_handle), SOTTO_STATUS_OK);
    EXPECT(sotto_abort_trigger(abort_handle), SOTTO_STATUS_OK);
    EXPECT(sotto_transcribe(model, one, n, params, &result), SOTTO_STATUS_ABORTED);
    EXPECT(sotto_abort_reset(abort_handle), SOTTO_STATUS_OK);

    struct handshake h = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    EXPECT(sotto_params_set_segment_callback(params, wait_for_trigger, &h), SOTTO_STATUS_OK);
    struct job job = {model, params, three, 3 * n, SOTTO_STATUS_OK, {0}};
    pthread_t worker;
    pthread_create(&worker, NULL, transcribe_job, &job);
    pthread_mutex_lock(&h.lock);
    while (!h.reached) pthread_cond_wait(&h.cond, &h.lock);
    EXPECT(sotto_abort_trigger(abort_handle), SOTTO_STATUS_OK);
    h.triggered = 1;
    pthread_cond_broadcast(&h.cond);
    pthread_mutex_unlock(&h.lock);
    pthread_join(worker, NULL);
    CHECK(job.status == SOTTO_STATUS_ABORTED && job.result.id == 0);

    EXPECT(sotto_abort_free(abort_handle), SOTTO_STATUS_OK);
    EXPECT(sotto_abort_free(abort_handle), SOTTO_STATUS_INVALID_HANDLE);
    EXPECT(sotto_params_free(params), SOTTO_STATUS_OK);
    EXPECT(sotto_model_free(model), SOTTO_STATUS_OK);
    EXPECT(sotto_model_free(model), SOTTO_STATUS_INVALID_HANDLE);
    EXPECT(sotto_transcribe(model, one, n, params, &result), SOTTO_STATUS_INVALID_HANDLE);
    free(three);
    free(one);

    CHECK(sotto_live_objects() == 0);
    if (failures) fprintf(stderr, "%d checks failed\n", failures);
    else printf("errors: all checks passed\n");
    return failures ? 1 : 0;
}
