// The worker's dynamic batcher without processes: models come from an in-process fake of the
// scheduler's FetchModel. Compatible requests share a UNet call and keep their own seeds; class
// labels mix in one batch, guidance scales do not; a bad request fails alone; the queue bound,
// cancellation, deadlines and shutdown answer with the right statuses.
#include <gtest/gtest.h>
#include <grpcpp/server_builder.h>
#include <torch/utils.h>

#include <filesystem>

#include "engine/model/model_folder.h"
#include "service/file_transfer.h"
#include "tests/test_models.h"
#include "worker/sample_batcher.h"

namespace qdm::worker {
namespace {

namespace fs = std::filesystem;

// FetchModel of model folders under `root`.
class FakeGateway final : public v1::WorkerGateway::Service {
 public:
  explicit FakeGateway(std::string root) : root_(std::move(root)) {}
  grpc::Status FetchModel(grpc::ServerContext*, const v1::FetchModelRequest* r, grpc::ServerWriter<v1::UploadChunk>* w) override {
    const std::string dir = root_ + "/" + r->name();
    if (r->artifact() || !fs::exists(dir)) return {grpc::NOT_FOUND, "no model named '" + r->name() + "'"};
    const auto files = service::model_folder_files(dir);
    v1::UploadChunk h;
    *h.mutable_header() = service::make_header(r->name(), dir, files);
    w->Write(h);
    service::send_file_chunks(dir, files, [&](const v1::FileChunk& c) {
      v1::UploadChunk m;
      *m.mutable_chunk() = c;
      return w->Write(m);
    });
    return grpc::Status::OK;
  }

 private:
  std::string root_;
};

class Batcher : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::temp_dir("batcher");
    torch::manual_seed(9);
    UNetConfig plain = testing::tiny_config();
    save_model_folder(dir_ + "/models/plain", *UNet2DModel(plain), SchedulerConfig{});
    UNetConfig cond = testing::tiny_config();
    cond.num_class_embeds = 4;
    cond.class_names = {"cat", "dog", "bird"};
    cond.null_class = 3;
    UNet2DModel c(cond);
    {
      torch::NoGradGuard g;
      c->class_table().normal_();
    }
    save_model_folder(dir_ + "/models/cond", *c, SchedulerConfig{});
    gateway_ = std::make_unique<FakeGateway>(dir_ + "/models");
    grpc::ServerBuilder b;
    b.RegisterService(gateway_.get());
    server_ = b.BuildAndStart();
    stub_ = v1::WorkerGateway::NewStub(server_->InProcessChannel({}));
    metrics_ = std::make_unique<WorkerMetrics>(registry_, "cpu");
    fetcher_ = std::make_unique<ModelFetcher>(dir_ + "/cache", *stub_, "");
    cache_ = std::make_unique<ModelCache>(*fetcher_, 2, *metrics_);
  }
  void TearDown() override {
    batcher_.reset();
    server_->Shutdown();
    fs::remove_all(dir_);
  }
  void start(BatchingOptions o) { batcher_ = std::make_unique<SampleBatcher>(*cache_, o, *metrics_); }
  std::shared_ptr<PendingSample> request(const std::string& model, int n, uint64_t seed, std::vector<std::string> labels = {},
                                         std::optional<double> guidance = std::nullopt) {
    auto p = std::make_shared<PendingSample>();
    p->request.set_model(model);
    p->request.set_num_images(n);
    p->request.set_seed(seed);
    p->request.mutable_sampler()->set_steps(3);
    for (auto& l : labels) p->request.add_class_labels(l);
    if (guidance) p->request.set_guidance_scale(*guidance);
    return p;
  }
  static grpc::Status wait(PendingSample& p) {
    std::unique_lock<std::mutex> lock(p.mu);
    p.cv.wait_for(lock, std::chrono::seconds(60), [&] { return p.done; });
    EXPECT_TRUE(p.done);
    return p.status;
  }
  std::string dir_;
  std::unique_ptr<FakeGateway> gateway_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::WorkerGateway::Stub> stub_;
  prometheus::Registry registry_;
  std::unique_ptr<WorkerMetrics> metrics_;
  std::unique_ptr<ModelFetcher> fetcher_;
  std::unique_ptr<ModelCache> cache_;
  std::unique_ptr<SampleBatcher> batcher_;
};

TEST_F(Batcher, CompatibleRequestsShareABatchAndKeepTheirSeeds) {
  start({true, 16, std::chrono::milliseconds(300), 64});
  auto a = request("plain", 2, 10), b = request("plain", 3, 20);
  ASSERT_TRUE(batcher_->submit(a).ok());
  ASSERT_TRUE(batcher_->submit(b).ok());
  ASSERT_TRUE(wait(*a).ok());
  ASSERT_TRUE(wait(*b).ok());
  EXPECT_EQ(a->summary.batch_size(), 5);
  EXPECT_EQ(b->summary.batch_size(), 5);
  ASSERT_EQ(b->images.size(), 3u);
  EXPECT_EQ(b->images[1].seed(), 21u);
  // The same image alone, in a batch of one: identical PNG (results do not depend on batching).
  auto alone = request("plain", 1, 21);
  ASSERT_TRUE(batcher_->submit(alone).ok());
  ASSERT_TRUE(wait(*alone).ok());
  EXPECT_EQ(alone->summary.batch_size(), 1);
  EXPECT_EQ(alone->images[0].png(), b->images[1].png());
}

TEST_F(Batcher, LabelsMixInABatchGuidanceScalesDoNot) {
  start({true, 16, std::chrono::milliseconds(300), 64});
  auto cat = request("cond", 1, 5, {"cat"}, 2.0), dog = request("cond", 2, 6, {"dog", "1"}, 2.0);
  auto other = request("cond", 1, 7, {"bird"}, 3.0), none = request("cond", 1, 8, {}, 2.0);
  for (auto& p : {cat, dog, other, none}) ASSERT_TRUE(batcher_->submit(p).ok());
  for (auto& p : {cat, dog, other, none}) ASSERT_TRUE(wait(*p).ok()) << wait(*p).error_message();
  EXPECT_EQ(cat->summary.batch_size(), 4);  // cat, dog x2 and the unlabelled (null class) image
  EXPECT_EQ(other->summary.batch_size(), 1);
  EXPECT_EQ(cat->images[0].class_label(), 0);
  EXPECT_EQ(dog->images[1].class_label(), 1);
  EXPECT_EQ(none->images[0].class_label(), 3);
}

TEST_F(Batcher, ABadRequestFailsAlone) {
  start({true, 16, std::chrono::milliseconds(300), 64});
  auto good = request("cond", 1, 1, {"dog"}), bad = request("cond", 1, 2, {"horse"});
  auto plain_labelled = request("plain", 1, 3, {"0"});
  for (auto& p : {good, bad, plain_labelled}) ASSERT_TRUE(batcher_->submit(p).ok());
  EXPECT_TRUE(wait(*good).ok());
  const grpc::Status s = wait(*bad);
  EXPECT_EQ(s.error_code(), grpc::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("unknown class label 'horse'; valid: 0 cat, 1 dog, 2 bird"), std::string::npos)
      << s.error_message();
  EXPECT_EQ(wait(*plain_labelled).error_code(), grpc::INVALID_ARGUMENT);
  auto missing = request("nothing", 1, 1);
  ASSERT_TRUE(batcher_->submit(missing).ok());
  EXPECT_EQ(wait(*missing).error_code(), grpc::NOT_FOUND);
}

TEST_F(Batcher, QueueBoundCancellationDeadlinesAndShutdown) {
  // Batches up to 8 images: the first two requests (6 images, the queue bound) do not fill one, so
  // they stay queued for the 2 s window while the third is refused. (With 4, the first request
  // filled a batch alone and a loaded machine could start it before the third arrived.)
  start({true, 8, std::chrono::milliseconds(2000), 6});
  auto first = request("plain", 4, 1), second = request("plain", 2, 2), third = request("plain", 1, 3);
  ASSERT_TRUE(batcher_->submit(first).ok());
  ASSERT_TRUE(batcher_->submit(second).ok());
  EXPECT_EQ(batcher_->submit(third).error_code(), grpc::RESOURCE_EXHAUSTED);
  second->cancelled = true;
  auto late = request("plain", 1, 4);
  late->deadline = std::chrono::system_clock::now();  // already passed when its batch starts
  EXPECT_TRUE(wait(*first).ok());
  EXPECT_EQ(wait(*second).error_code(), grpc::CANCELLED);
  ASSERT_TRUE(batcher_->submit(late).ok());
  EXPECT_EQ(wait(*late).error_code(), grpc::DEADLINE_EXCEEDED);
  auto queued = request("plain", 1, 5);
  ASSERT_TRUE(batcher_->submit(queued).ok());
  batcher_->stop();
  EXPECT_EQ(wait(*queued).error_code(), grpc::UNAVAILABLE);
  EXPECT_EQ(batcher_->submit(request("plain", 1, 6)).error_code(), grpc::UNAVAILABLE);
}

}  // namespace
}  // namespace qdm::worker
