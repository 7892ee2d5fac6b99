// The job store behind the scheduler, without processes: persistence across reopening,
// idempotency, queue positions, leases with fencing, expiry with backoff and bounded attempts,
// cancellation, paging, restart renewal and the typed report. Written against a factory so the
// same suite runs on every store implementation.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <thread>

#include "server/job_store.h"

namespace qdm::server {
namespace {

namespace fs = std::filesystem;

class JobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qdm-jobstore-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    open();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  void open(JobStore::Options o = {3, 0.05}) {
    store_.reset();
    store_ = std::make_unique<JobStore>((dir_ / "qdm.db").string(), o);
  }
  v1::Job submit(const std::string& key = "", bool* created = nullptr) {
    bool c = false;
    v1::QuantizeOptions o;
    o.set_recipe("rtn");
    auto job = store_->submit("tiny", o, key, "tiny-rtn", &c);
    if (created) *created = c;
    return job;
  }
  fs::path dir_;
  std::unique_ptr<JobStore> store_;
};

TEST_F(JobStoreTest, SubmittedJobsSurviveReopening) {
  const v1::Job a = submit(), b = submit();
  EXPECT_EQ(a.state(), v1::Job::QUEUED);
  EXPECT_EQ(a.queue_position(), 0);
  EXPECT_EQ(b.queue_position(), 1);
  open();  // as after kill -9: everything acknowledged is on disk
  ASSERT_TRUE(store_->get(a.id()));
  EXPECT_EQ(store_->get(b.id())->queue_position(), 1);
  EXPECT_EQ(store_->get(a.id())->options().recipe(), "rtn");
  EXPECT_FALSE(store_->get("job-none"));
}

TEST_F(JobStoreTest, IdempotencyKeyReturnsTheSameJob) {
  bool created = false;
  const v1::Job a = submit("key-1", &created);
  EXPECT_TRUE(created);
  const v1::Job again = submit("key-1", &created);
  EXPECT_FALSE(created);
  EXPECT_EQ(again.id(), a.id());
  EXPECT_NE(submit("key-2").id(), a.id());
  EXPECT_EQ(store_->count_by_state()[v1::Job::QUEUED], 2);
}

TEST_F(JobStoreTest, OnlyTheCurrentLeaseHolderReportsAndFinishes) {
  const v1::Job job = submit();
  auto lease = store_->lease_next("w1", 5);
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->job.id(), job.id());
  EXPECT_EQ(lease->job.attempt(), 1);
  EXPECT_FALSE(store_->lease_next("w2", 5));  // nothing else queued
  EXPECT_TRUE(store_->report(job.id(), lease->lease_id, "calibration data", 0.3, 0.1, 5));
  EXPECT_EQ(store_->get(job.id())->state(), v1::Job::RUNNING);
  EXPECT_FALSE(store_->report(job.id(), "lease-forged", "x", 0.5, 0, 5));
  EXPECT_FALSE(store_->finish(job.id(), "lease-forged", true, "", "{}"));
  EXPECT_TRUE(store_->finish(job.id(), lease->lease_id, true, "",
                             R"({"images": 8, "psnr_vs_fp": 31.5, "fid_fmnist": 12.0, "mse_vs_fp": 0.001})"));
  const v1::Job done = *store_->get(job.id());
  EXPECT_EQ(done.state(), v1::Job::SUCCEEDED);
  EXPECT_EQ(done.report().images(), 8);  // typed fields, not only the JSON
  EXPECT_DOUBLE_EQ(done.report().psnr_vs_fp(), 31.5);
  EXPECT_DOUBLE_EQ(done.report().fid_fmnist(), 12.0);
  EXPECT_FALSE(store_->finish(job.id(), lease->lease_id, true, "", "{}"));  // once
}

TEST_F(JobStoreTest, ExpiredLeasesRequeueWithBackoffThenFail) {
  open({2, 0.05});
  const v1::Job job = submit();
  auto lease = store_->lease_next("w1", 0.01);
  ASSERT_TRUE(lease);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(store_->expire_leases(), std::vector<std::string>{job.id()});
  v1::Job requeued = *store_->get(job.id());
  EXPECT_EQ(requeued.state(), v1::Job::QUEUED);
  EXPECT_NE(requeued.error().find("lost its lease"), std::string::npos);
  EXPECT_FALSE(store_->report(job.id(), lease->lease_id, "x", 0.5, 0, 5));  // the old holder is fenced off
  EXPECT_FALSE(store_->lease_next("w2", 5));  // backoff
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  auto second = store_->lease_next("w2", 0.01);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->job.attempt(), 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  store_->expire_leases();
  EXPECT_EQ(store_->get(job.id())->state(), v1::Job::FAILED);  // max_attempts = 2
  EXPECT_NE(store_->get(job.id())->error().find("max_attempts=2"), std::string::npos);
}

TEST_F(JobStoreTest, CancelQueuedAndRunningButNotFinished) {
  const v1::Job queued = submit(), running = submit();
  auto lease = store_->lease_next("w1", 5);
  ASSERT_EQ(lease->job.id(), queued.id());
  bool changed = false;
  EXPECT_EQ(store_->cancel(queued.id(), &changed)->state(), v1::Job::CANCELLED);
  EXPECT_TRUE(changed);
  EXPECT_FALSE(store_->report(queued.id(), lease->lease_id, "x", 0.5, 0, 5));  // the worker learns to stop
  EXPECT_EQ(store_->cancel(running.id(), &changed)->state(), v1::Job::CANCELLED);
  EXPECT_EQ(store_->cancel(queued.id(), &changed)->state(), v1::Job::CANCELLED);
  EXPECT_FALSE(changed);
  EXPECT_FALSE(store_->cancel("job-none", &changed));
  EXPECT_FALSE(store_->model_in_use("tiny"));
}

TEST_F(JobStoreTest, ListsNewestFirstInPages) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(submit().id());
  store_->lease_next("w1", 5);  // ids[0] leased
  JobPage p = store_->list({}, 2, "");
  ASSERT_EQ(p.jobs.size(), 2u);
  EXPECT_EQ(p.jobs[0].id(), ids[4]);
  p = store_->list({}, 2, p.next_page_token);
  EXPECT_EQ(p.jobs[0].id(), ids[2]);
  p = store_->list({}, 2, p.next_page_token);
  EXPECT_EQ(p.jobs.size(), 1u);
  EXPECT_TRUE(p.next_page_token.empty());
  EXPECT_EQ(store_->list({v1::Job::LEASED}, 10, "").jobs.size(), 1u);
  EXPECT_THROW(store_->list({}, 2, "not-a-token"), std::invalid_argument);
  EXPECT_TRUE(store_->model_in_use("tiny"));
}

TEST_F(JobStoreTest, LeasesHeldAcrossARestartAreRenewed) {
  submit();
  auto lease = store_->lease_next("w1", 0.01);
  open();
  EXPECT_EQ(store_->renew_leases_after_restart(5), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_TRUE(store_->expire_leases().empty());  // the worker gets time to reconnect
  EXPECT_TRUE(store_->report(lease->job.id(), lease->lease_id, "resumed", 0.5, 0, 5));
}

TEST_F(JobStoreTest, WatchersWakeOnChanges) {
  const uint64_t v = store_->version();
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    submit();
  });
  EXPECT_NE(store_->wait_for_change(v, std::chrono::seconds(5)), v);
  t.join();
}

}  // namespace
}  // namespace qdm::server
