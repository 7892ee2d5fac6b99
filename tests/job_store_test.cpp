// The job store behind the scheduler, without processes: persistence across reopening,
// idempotency, queue positions, leases with fencing, expiry with backoff and bounded attempts,
// cancellation, paging, restart renewal and the typed report. The same suite runs on SQLite and
// on PostgreSQL (a throw-away cluster per test process, a database per test); the PostgreSQL
// store's replica behaviour (two stores on one database) has its own tests below.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>

#include "service/redact.h"
#include "server/job_store.h"
#include "server/postgres_job_store.h"
#include "server/postgres_schema.h"
#include "tests/pg_cluster.h"

namespace qdm::server {
namespace {

namespace fs = std::filesystem;

std::string test_name() {
  std::string n = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  for (char& c : n)
    c = std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(static_cast<unsigned char>(c))) : '_';
  return n;  // a PostgreSQL database name as written, unquoted
}

class JobStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("qdm-jobstore-" + std::to_string(::getpid()) + "-" + test_name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    url_ = GetParam() == "sqlite" ? "sqlite:" + (dir_ / "qdm.db").string()
                                  : qdm::testing::fresh_postgres_database("t_" + std::to_string(::getpid()) + "_" + test_name());
    open();
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(dir_);
  }
  void open(JobStore::Options o = {3, 0.05}) {
    store_.reset();
    store_ = open_job_store(url_, o);
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
  std::string url_;
  std::unique_ptr<JobStore> store_;
};

INSTANTIATE_TEST_SUITE_P(Stores, JobStoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

TEST_P(JobStoreTest, SubmittedJobsSurviveReopening) {
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

TEST_P(JobStoreTest, IdempotencyKeyReturnsTheSameJob) {
  bool created = false;
  const v1::Job a = submit("key-1", &created);
  EXPECT_TRUE(created);
  const v1::Job again = submit("key-1", &created);
  EXPECT_FALSE(created);
  EXPECT_EQ(again.id(), a.id());
  EXPECT_NE(submit("key-2").id(), a.id());
  EXPECT_EQ(store_->count_by_state()[v1::Job::QUEUED], 2);
}

TEST_P(JobStoreTest, OnlyTheCurrentLeaseHolderReportsAndFinishes) {
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

TEST_P(JobStoreTest, ExpiredLeasesRequeueWithBackoffThenFail) {
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

TEST_P(JobStoreTest, CancelQueuedAndRunningButNotFinished) {
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

TEST_P(JobStoreTest, ListsNewestFirstInPages) {
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

TEST_P(JobStoreTest, LeasesHeldAcrossARestartAreRenewed) {
  submit();
  auto lease = store_->lease_next("w1", 0.01);
  open();
  EXPECT_EQ(store_->renew_leases_after_restart(5), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_TRUE(store_->expire_leases().empty());  // the worker gets time to reconnect
  EXPECT_TRUE(store_->report(lease->job.id(), lease->lease_id, "resumed", 0.5, 0, 5));
}

TEST_P(JobStoreTest, TheQueueBoundHoldsButKnownKeysStillAnswer) {
  open({3, 0.05, 2});
  const v1::Job a = submit("k-a");
  submit();
  EXPECT_THROW(submit(), QueueFull);
  EXPECT_EQ(submit("k-a").id(), a.id());  // a retry of an accepted job is not refused
  ASSERT_TRUE(store_->lease_next("w1", 5));
  submit();  // one slot free again
  EXPECT_EQ(store_->count_by_state()[v1::Job::QUEUED], 2);
}

TEST_P(JobStoreTest, WatchersWakeOnChanges) {
  const uint64_t v = store_->version();
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    submit();
  });
  EXPECT_NE(store_->wait_for_change(v, std::chrono::seconds(5)), v);
  t.join();
}

// Two schedulers on one PostgreSQL database: what one does, the other sees.
class ReplicatedJobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { url_ = qdm::testing::fresh_postgres_database("r_" + std::to_string(::getpid()) + "_" + test_name()); }
  std::unique_ptr<JobStore> replica() { return open_job_store(url_, {3, 0.05}); }
  static v1::Job submit(JobStore& s, const std::string& key = "") {
    bool created = false;
    v1::QuantizeOptions o;
    o.set_recipe("rtn");
    return s.submit("tiny", o, key, "tiny-rtn", &created);
  }
  std::string url_;
};

TEST_F(ReplicatedJobStoreTest, ConcurrentReplicasLeaseEveryJobExactlyOnce) {
  auto a = replica(), b = replica();
  std::vector<std::string> submitted;
  for (int i = 0; i < 40; ++i) submitted.push_back(submit(i % 2 ? *a : *b).id());
  std::vector<std::string> leased_a, leased_b;
  auto drain = [](JobStore& s, std::vector<std::string>& out, const char* worker) {
    while (auto l = s.lease_next(worker, 30)) out.push_back(l->job.id());
  };
  std::thread ta([&] { drain(*a, leased_a, "wa"); }), tb([&] { drain(*b, leased_b, "wb"); });
  ta.join();
  tb.join();
  std::vector<std::string> all = leased_a;
  all.insert(all.end(), leased_b.begin(), leased_b.end());
  std::sort(all.begin(), all.end());
  std::sort(submitted.begin(), submitted.end());
  EXPECT_EQ(all, submitted);  // each exactly once, none lost
  EXPECT_FALSE(leased_a.empty());
  EXPECT_FALSE(leased_b.empty());
}

TEST_F(ReplicatedJobStoreTest, IdempotencyAndLeasesHoldAcrossReplicas) {
  auto a = replica(), b = replica();
  const v1::Job job = submit(*a, "key-x");
  bool created = true;
  v1::QuantizeOptions o;
  EXPECT_EQ(b->submit("tiny", o, "key-x", "", &created).id(), job.id());
  EXPECT_FALSE(created);
  auto lease = b->lease_next("w1", 5);
  ASSERT_TRUE(lease);
  EXPECT_TRUE(a->report(job.id(), lease->lease_id, "calibration", 0.5, 0, 5));  // the worker failed over to a
  EXPECT_FALSE(b->report(job.id(), "lease-forged", "x", 0.6, 0, 5));
  EXPECT_TRUE(a->finish(job.id(), lease->lease_id, true, "", "{}"));
  EXPECT_FALSE(b->finish(job.id(), lease->lease_id, true, "", "{}"));  // exactly once
  EXPECT_EQ(b->get(job.id())->state(), v1::Job::SUCCEEDED);
}

TEST_F(ReplicatedJobStoreTest, SixteenClientsOnTwoReplicasNeverExceedTheQueueBound) {
  auto a = open_job_store(url_, {3, 0.05, 5}), b = open_job_store(url_, {3, 0.05, 5});
  std::atomic<int> accepted{0}, refused{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 16; ++c)
    clients.emplace_back([&, c] {
      for (int i = 0; i < 3; ++i) {
        try {
          submit(c % 2 ? *a : *b);
          ++accepted;
        } catch (const QueueFull&) {
          ++refused;
        }
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(accepted.load(), 5);
  EXPECT_EQ(refused.load(), 43);
  EXPECT_EQ(b->count_by_state()[v1::Job::QUEUED], 5);
}

TEST_F(ReplicatedJobStoreTest, AChangeThroughOneReplicaWakesWatchersOfAnother) {
  auto a = replica(), b = replica();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // both listeners connected
  const uint64_t v = a->version();
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    submit(*b);
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_NE(a->wait_for_change(v, std::chrono::seconds(5)), v);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  t.join();
}

TEST_F(ReplicatedJobStoreTest, ReplicasStartingAtOnceMigrateOnce) {
  std::vector<std::thread> threads;
  std::vector<std::unique_ptr<JobStore>> stores(6);
  std::vector<std::string> errors(6);
  for (size_t i = 0; i < stores.size(); ++i)
    threads.emplace_back([&, i] {
      try {
        stores[i] = replica();
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");
  const std::string db = url_.substr(url_.find(":///") + 4, url_.find('?') - url_.find(":///") - 4);
  EXPECT_EQ(qdm::testing::postgres_query(db, "SELECT COUNT(*) FROM qdm_schema_history"),
            std::to_string(pg::schema_version()));
  submit(*stores[0]);
  EXPECT_EQ(stores[5]->count_by_state()[v1::Job::QUEUED], 1);
}

TEST_F(ReplicatedJobStoreTest, ANewerSchemaIsRefusedWithAClearError) {
  replica();
  const std::string db = url_.substr(url_.find(":///") + 4, url_.find('?') - url_.find(":///") - 4);
  qdm::testing::postgres_query(db, "INSERT INTO qdm_schema_history VALUES (999, 0)");
  try {
    replica();
    FAIL() << "a newer schema was accepted";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("newer than this scheduler"), std::string::npos) << e.what();
  }
}

TEST(JobStoreUrl, UnknownSchemesAndPasswordsInLogs) {
  EXPECT_THROW(open_job_store("mysql://x", {}), std::invalid_argument);
  EXPECT_EQ(describe_store_url("postgresql://qdm:s3cret@db:5432/qdm"), "postgresql://qdm:***@db:5432/qdm");
  EXPECT_EQ(describe_store_url("sqlite:/data/qdm.db"), "sqlite:/data/qdm.db");
  // Passwords as URL parameters (libpq takes password and sslpassword there too), any case.
  EXPECT_EQ(describe_store_url("postgresql://db/qdm?user=qdm&password=p1&sslmode=require&sslpassword=p2"),
            "postgresql://db/qdm?user=qdm&password=***&sslmode=require&sslpassword=***");
  EXPECT_EQ(describe_store_url("postgres://u:p%40ss@db/qdm?PassWord=x"), "postgres://u:***@db/qdm?PassWord=***");
}

TEST(Redact, EveryLogLineLosesItsSecrets) {
  using service::redact_secrets;
  // libpq keyword strings, quoted values included; words that merely end in "password" stay.
  EXPECT_EQ(redact_secrets("connect: host=db password='a b\\'c' user=qdm"), "connect: host=db password=*** user=qdm");
  EXPECT_EQ(redact_secrets("host=db password = hunter2"), "host=db password = ***");
  EXPECT_EQ(redact_secrets("no_password=3 passwords=4"), "no_password=3 passwords=4");
  EXPECT_EQ(redact_secrets("authorization: Bearer abc.def-123, next"), "authorization: Bearer ***, next");
  EXPECT_EQ(redact_secrets("store postgresql://qdm:pw@h/db unreachable (retrying)"),
            "store postgresql://qdm:***@h/db unreachable (retrying)");
  EXPECT_EQ(redact_secrets("https://example.org/a@b and file:///x:y@z"), "https://example.org/a@b and file:///x:y@z");
  EXPECT_EQ(redact_secrets("plain text: 1..64 images/s"), "plain text: 1..64 images/s");
}

}  // namespace
}  // namespace qdm::server
