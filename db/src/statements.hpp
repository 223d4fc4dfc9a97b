// Every SQL statement db/ runs, in one place: constants with $n parameters, prepared on each
// pooled connection (repository_statements()) and executed with exec_prepared. Nothing in
// db/ builds SQL from strings (tests/db/sql_lint_test.cpp checks). Internal to db/.
//
// Conventions: timestamps cross the wire as microseconds since the epoch (bigint):
//   in:  timestamptz 'epoch' + $n * interval '1 microsecond'
//   out: (extract(epoch FROM col) * 1000000)::bigint   (numeric, so exact)
// uuids and jsonb are sent and read as text.
#pragma once

namespace forkcast::db::sql {

struct Statement {
  const char* name;
  const char* text;
};

// users
extern const Statement kUserInsert;
extern const Statement kUserById;
extern const Statement kUserByToken;
extern const Statement kUserUpdateProfile;
// user_state
extern const Statement kStateUpsert;
extern const Statement kStateInsertNew;
extern const Statement kStateUpdateVersion;
extern const Statement kStateGet;
extern const Statement kStateLatest;
extern const Statement kUserExists;
// decisions
extern const Statement kDecisionInsert;
extern const Statement kDecisionInsertBatch;
extern const Statement kDecisionById;
extern const Statement kDecisionCountForUser;
extern const Statement kDecisionsForUser;
extern const Statement kDecisionsBetween;
// feedback
extern const Statement kFeedbackWriteBatch;
extern const Statement kFeedbackByKey;
extern const Statement kFeedbackForEvent;
// meal_log
extern const Statement kMealLogInsert;
extern const Statement kMealLogByKey;
extern const Statement kMealLogForUser;
// models
extern const Statement kModelInsert;
extern const Statement kModelByVersion;
extern const Statement kModelsAll;
extern const Statement kModelProduction;
extern const Statement kModelRegistryLock;
extern const Statement kModelRetireProduction;
extern const Statement kModelSetProduction;
extern const Statement kModelRetire;
// training_runs
extern const Statement kRunInsert;
extern const Statement kRunFinish;
extern const Statement kRunById;
extern const Statement kRunsRecent;
// eval_reports
extern const Statement kReportInsert;
extern const Statement kReportById;
extern const Statement kReportsForModel;

// the learning log
extern const Statement kLearningScanSettings;
extern const char* const kLearningScanQuery;  // DECLAREd as a cursor, not prepared
extern const Statement kWatermarkGet;
extern const Statement kWatermarkInsert;
extern const Statement kWatermarkAdvance;
extern const Statement kNewestDecision;
extern const Statement kModelReject;
extern const Statement kCycleInsert;
extern const Statement kCyclesOfLearner;
extern const Statement kLearnerTryLock;  // on the lock's own connection, not the pool's

// All of the above, for the pool.
extern const Statement* const kAll[];
extern const int kAllCount;

}  // namespace forkcast::db::sql
