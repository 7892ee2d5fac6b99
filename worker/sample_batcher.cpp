#include "worker/sample_batcher.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "engine/sampling/image_bytes.h"
#include "format/class_labels.h"
#include "format/timesteps.h"
#include "service/convert.h"

namespace qdm::worker {
namespace {

using Clock = std::chrono::steady_clock;

// Requests with the same key can share a UNet call. Class labels are per image, so requests
// with different labels batch together; guidance scales differ per call, so they do not.
// Prompts are per image too; the negative prompt and the image size are per call.
std::string batch_key(const v1::SampleRequest& r) {
  return r.model() + "|" + r.artifact() + "|" + std::to_string(r.kernels()) + "|" + r.sampler().SerializeAsString() +
         "|" + std::to_string(r.has_guidance_scale() ? r.guidance_scale() : 1.0) + "|" + std::to_string(r.height()) + "x" +
         std::to_string(r.width()) + "|" + std::to_string(r.negative_prompt().size()) + ":" + r.negative_prompt();
}

// The protocol's prompt fields as the engine's request takes them.
void set_prompts(const v1::SampleRequest& r, SampleRequest& out) {
  out.prompts.assign(r.prompt().begin(), r.prompt().end());
  out.negative_prompt = r.negative_prompt();
  out.height = r.height();
  out.width = r.width();
}

void finish(PendingSample& p, const grpc::Status& status) {
  std::lock_guard<std::mutex> lock(p.mu);
  p.done = true;
  p.status = status;
  p.cv.notify_all();
}

bool gone(const PendingSample& p) { return p.cancelled || std::chrono::system_clock::now() > p.deadline; }

}  // namespace

SampleBatcher::SampleBatcher(ModelCache& cache, BatchingOptions options, WorkerMetrics& metrics)
    : cache_(cache), options_(options), metrics_(metrics), thread_([this] { loop(); }) {}

SampleBatcher::~SampleBatcher() { stop(); }

void SampleBatcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& p : queue_) finish(*p, {grpc::UNAVAILABLE, "the worker is shutting down; retry"});
  queue_.clear();
}

grpc::Status SampleBatcher::submit(const std::shared_ptr<PendingSample>& request) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return {grpc::UNAVAILABLE, "the worker is shutting down; retry"};
  const int n = request->request.num_images();
  if (queued_images_ + n > options_.max_queued_images && queued_images_ > 0)
    return {grpc::RESOURCE_EXHAUSTED, "the worker's sampling queue is full (" + std::to_string(queued_images_) +
                                          " images waiting, limit " + std::to_string(options_.max_queued_images) +
                                          "); retry later"};
  queue_.push_back(request);
  queued_images_ += n;
  metrics_.queue_depth.Set(queued_images_);
  cv_.notify_all();
  return grpc::Status::OK;
}

int SampleBatcher::queued_images() {
  std::lock_guard<std::mutex> lock(mu_);
  return queued_images_;
}

void SampleBatcher::loop() {
  while (true) {
    std::vector<std::shared_ptr<PendingSample>> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      // Wait for company until the oldest request has waited max_delay or the batch is full.
      const std::string key = batch_key(queue_.front()->request);
      auto compatible_images = [&] {
        int n = 0;
        for (auto& p : queue_)
          if (batch_key(p->request) == key) n += p->request.num_images();
        return n;
      };
      if (options_.enabled) {
        const auto until = queue_.front()->arrived + options_.max_delay;
        cv_.wait_until(lock, until, [&] { return stopping_ || compatible_images() >= options_.max_batch; });
        if (stopping_) return;
      }
      int images = 0;
      for (auto it = queue_.begin(); it != queue_.end();) {
        const int n = (*it)->request.num_images();
        const bool fits = batch.empty() || (options_.enabled && batch_key((*it)->request) == key &&
                                            images + n <= options_.max_batch);
        if (!fits) {
          ++it;
          continue;
        }
        batch.push_back(*it);
        images += n;
        queued_images_ -= n;
        it = queue_.erase(it);
        if (!options_.enabled) break;
      }
      metrics_.queue_depth.Set(queued_images_);
    }
    run(std::move(batch));
  }
}

void SampleBatcher::run(std::vector<std::shared_ptr<PendingSample>> batch) {
  const auto start = Clock::now();
  // Drop requests whose callers left while they waited.
  std::vector<std::shared_ptr<PendingSample>> live;
  for (auto& p : batch) {
    if (gone(*p)) finish(*p, p->cancelled ? grpc::Status::CANCELLED : grpc::Status(grpc::DEADLINE_EXCEEDED, "deadline passed while queued"));
    else live.push_back(p);
  }
  if (live.empty()) return;
  const v1::SampleRequest& first = live.front()->request;
  std::shared_ptr<ServedModel> model;
  SampleRequest req;
  try {
    const bool artifact = first.source_case() == v1::SampleRequest::kArtifact;
    model = cache_.get(artifact ? first.artifact() : first.model(), artifact,
                       first.kernels() == v1::SampleRequest::SIM ? KernelMode::kSim : KernelMode::kInt);
    req.sampler = service::sampler_options(first.sampler(), model->default_sampler());
    model->check(req.sampler);
    req.guidance_scale = first.has_guidance_scale() ? first.guidance_scale() : 1.0;
    // Each request's labels against the model, so one bad request fails alone.
    for (auto it = live.begin(); it != live.end();) {
      try {
        const auto& r = (*it)->request;
        // Prompts first: a prompt on a model without a text encoder is refused as that.
        SampleRequest one;
        one.num_images = r.num_images();
        set_prompts(r, one);
        model->check_prompts(one);
        const std::vector<int> labels = parse_class_labels(model->config(), {r.class_labels().begin(), r.class_labels().end()}, r.num_images());
        model->check_conditioning(labels, req.guidance_scale);
        (*it)->labels = labels;
        ++it;
      } catch (const std::invalid_argument& e) {
        finish(**it, {grpc::INVALID_ARGUMENT, e.what()});
        it = live.erase(it);
      }
    }
    if (live.empty()) return;
  } catch (const FetchError& e) {
    for (auto& p : live) finish(*p, {e.code, e.what()});
    return;
  } catch (const std::exception& e) {
    const grpc::Status status = service::status_from_exception(e, "loading the model failed", cache_.hidden_paths());
    for (auto& p : live) finish(*p, status);
    return;
  }
  std::vector<std::pair<PendingSample*, int>> owner;  // image -> (request, index within it)
  const bool conditional = model->config().conditional();
  set_prompts(first, req);
  req.prompts.clear();
  const bool prompted = std::any_of(live.begin(), live.end(), [](const auto& p) { return p->request.prompt_size() > 0; });
  for (auto& p : live)
    for (int i = 0; i < p->request.num_images(); ++i) {
      req.seeds.push_back(p->request.seed() + static_cast<uint64_t>(i));
      // Prompts per image across the batch (none: the empty prompt).
      if (prompted) {
        const auto& ps = p->request.prompt();
        req.prompts.push_back(ps.empty() ? std::string() : ps.Get(ps.size() == 1 ? 0 : i));
      }
      // No label on a conditional model: the null class (unconditional).
      if (conditional) req.class_labels.push_back(p->labels.empty() ? *model->config().null_class : p->labels[static_cast<size_t>(i)]);
      owner.emplace_back(p.get(), i);
    }
  req.num_images = static_cast<int>(req.seeds.size());
  req.batch_size = std::min(req.num_images, std::max(1, options_.max_batch));
  const std::string precision = precision_label(*model);
  auto& step_hist = metrics_.step_latency(precision);
  for (auto& p : live) {
    metrics_.queue_wait.Observe(std::chrono::duration<double>(start - p->arrived).count());
    std::lock_guard<std::mutex> lock(p->mu);
    p->summary.set_queue_seconds(std::chrono::duration<double>(start - p->arrived).count());
    p->summary.set_batch_size(req.num_images);
  }
  metrics_.batch_size.Observe(req.batch_size);
  auto last_step = Clock::now();
  try {
    ServedModel::StageSeconds stages;
    const std::vector<float> images = model->generate(req, [&](const SampleProgress& sp) {
      const auto now = Clock::now();
      step_hist.Observe(std::chrono::duration<double>(now - last_step).count());
      last_step = now;
      bool any = false;
      for (auto& p : live) {
        if (gone(*p)) continue;
        any = true;
        std::lock_guard<std::mutex> lock(p->mu);
        v1::SampleEvent::Progress pr;
        pr.set_step(sp.step);
        pr.set_steps(sp.steps);
        pr.set_images_done(0);
        p->progress = pr;
        p->cv.notify_all();
      }
      return any;
    }, &stages);
    metrics_.stage_latency("denoising").Observe(stages.denoising);
    if (model->takes_prompts()) {
      metrics_.stage_latency("text_encoding").Observe(stages.text_encoding);
      metrics_.stage_latency("vae_decoding").Observe(stages.vae_decoding);
    }
    const double compute = std::chrono::duration<double>(Clock::now() - start).count();
    for (size_t i = 0; i < owner.size(); ++i) {
      auto [p, index] = owner[i];
      v1::GeneratedImage img;
      img.set_index(index);
      img.set_seed(req.seeds[i]);
      img.set_class_label(req.class_labels.empty() ? -1 : req.class_labels[i]);
      if (model->takes_prompts()) {
        const std::string prompt = req.prompts.empty() ? std::string() : req.prompts[i];
        img.set_prompt(prompt);
        img.set_prompt_truncated(model->prompt_truncated(prompt));
      }
      const ServedModel::ImageShape shape = model->image_shape(req);
      const auto png = image_png(images.data() + i * shape.size(), shape.channels, shape.height, shape.width,
                                 model->png_text(req, static_cast<int>(i)));
      img.set_png(png.data(), png.size());
      std::lock_guard<std::mutex> lock(p->mu);
      p->images.push_back(std::move(img));
    }
    metrics_.images(precision).Increment(static_cast<double>(owner.size()));
    for (auto& p : live) {
      {
        std::lock_guard<std::mutex> lock(p->mu);
        p->summary.set_compute_seconds(compute);
      }
      finish(*p, gone(*p) ? grpc::Status(grpc::CANCELLED, "cancelled") : grpc::Status::OK);
    }
  } catch (const SamplingCancelled&) {
    for (auto& p : live)
      finish(*p, p->cancelled ? grpc::Status(grpc::CANCELLED, "cancelled by the caller")
                              : grpc::Status(grpc::DEADLINE_EXCEEDED, "the deadline passed during sampling"));
  } catch (const std::exception& e) {
    spdlog::error("sampling failed: {}", e.what());
    const grpc::Status status = service::status_from_exception(e, "sampling failed", cache_.hidden_paths());
    for (auto& p : live) finish(*p, status);
  }
}

}  // namespace qdm::worker
