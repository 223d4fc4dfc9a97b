// "All SQL is parameterised; no string-built SQL anywhere" (DESIGN.md §4), checked on the
// sources of db/ and service/ (the modules that talk to PostgreSQL). A violation is:
//   - a string literal holding SQL (an upper-case keyword) joined to something at run time:
//     `+`, `<<`, append(...), format(...), sprintf(...);
//   - a call of libpqxx's quoting helpers (esc, esc_raw, quote, quote_name), which exist only
//     to splice values into SQL text;
//   - exec/exec0/exec1/exec_n/exec_params* whose query is not a literal, a named constant
//     (kName) or an embedded migration's `.sql`.
// The checker is tested on snippets first, so a silent checker cannot pass the sources.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace {

struct Literal {
  std::size_t begin = 0;  // first character of the literal (the quote or the R)
  std::size_t end = 0;    // one past the closing quote
  std::string text;
};

// The string literals of a C++ source (plain and raw), skipping comments and char literals.
std::vector<Literal> literals_of(const std::string& s) {
  std::vector<Literal> out;
  std::size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, 2, "//") == 0) {
      i = s.find('\n', i);
      if (i == std::string::npos) break;
    } else if (s.compare(i, 2, "/*") == 0) {
      i = s.find("*/", i + 2);
      if (i == std::string::npos) break;
      i += 2;
    } else if (s[i] == 'R' && i + 1 < s.size() && s[i + 1] == '"' &&
               (i == 0 ||
                !(std::isalnum(static_cast<unsigned char>(s[i - 1])) || s[i - 1] == '_'))) {
      const std::size_t open = s.find('(', i + 2);
      const std::string delimiter = ")" + s.substr(i + 2, open - i - 2) + "\"";
      const std::size_t close = s.find(delimiter, open);
      out.push_back({i, close + delimiter.size(), s.substr(open + 1, close - open - 1)});
      i = close + delimiter.size();
    } else if (s[i] == '"') {
      std::size_t j = i + 1;
      while (j < s.size() && s[j] != '"') j += s[j] == '\\' ? 2 : 1;
      out.push_back({i, j + 1, s.substr(i + 1, j - i - 1)});
      i = j + 1;
    } else if (s[i] == '\'') {
      std::size_t j = i + 1;
      while (j < s.size() && s[j] != '\'') j += s[j] == '\\' ? 2 : 1;
      i = j + 1;
    } else {
      ++i;
    }
  }
  return out;
}

int line_of(const std::string& s, std::size_t pos) {
  return 1 + static_cast<int>(
                 std::count(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
}

std::vector<std::string> violations(const std::string& source, const std::string& file) {
  std::vector<std::string> found;
  const std::regex sql_keyword(
      R"(\b(SELECT|INSERT|UPDATE|DELETE|WHERE|VALUES|FROM|CREATE|DROP|ALTER)\b)");
  const std::regex joined_before(R"((\+|<<|append\s*\(|format\s*\(|printf\s*\([^;]*,)\s*$)");
  const std::regex joined_after(R"(^\s*(\+|<<))");
  const auto literals = literals_of(source);
  for (const auto& lit : literals) {
    if (!std::regex_search(lit.text, sql_keyword)) continue;
    const std::string before =
        source.substr(lit.begin > 80 ? lit.begin - 80 : 0, std::min<std::size_t>(lit.begin, 80));
    const std::string after = source.substr(lit.end, 20);
    if (std::regex_search(before, joined_before) || std::regex_search(after, joined_after)) {
      found.push_back(file + ":" + std::to_string(line_of(source, lit.begin)) +
                      ": SQL text built at run time");
    }
  }
  // Blank out literals and comments so calls are matched in code only.
  std::string code = source;
  for (const auto& lit : literals) {
    for (std::size_t k = lit.begin; k < lit.end; ++k) {
      if (code[k] != '\n') code[k] = 'x';
    }
    code[lit.begin] = '"';
  }
  const std::regex quoting(R"(\b(esc|esc_raw|quote|quote_name)\s*\()");
  for (std::sregex_iterator it(code.begin(), code.end(), quoting), end; it != end; ++it) {
    const auto pos = static_cast<std::size_t>(it->position());
    if (pos > 0 && (code[pos - 1] == '.' || code[pos - 1] == '>' || code[pos - 1] == ':')) {
      found.push_back(file + ":" + std::to_string(line_of(source, pos)) + ": SQL quoting helper " +
                      (*it)[1].str());
    }
  }
  const std::regex exec_call(
      R"([.>](exec|exec0|exec1|exec_n|exec_params|exec_params0|exec_params1|exec_params_n)\s*\(\s*([^,)]*))");
  const std::regex allowed(R"(^("|k[A-Z]\w*\b|\w+\.sql\b))");
  for (std::sregex_iterator it(code.begin(), code.end(), exec_call), end; it != end; ++it) {
    const std::string argument = (*it)[2].str();
    if (!std::regex_search(argument, allowed)) {
      found.push_back(
          file + ":" + std::to_string(line_of(source, static_cast<std::size_t>(it->position()))) +
          ": " + (*it)[1].str() + "() with a query that is not a constant: " + argument);
    }
  }
  return found;
}

}  // namespace

TEST(SqlLint, TheCheckerCatchesStringBuiltSql) {
  EXPECT_EQ(violations(R"(tx.exec("SELECT * FROM users WHERE id = " + id);)", "a").size(), 1U);
  EXPECT_EQ(violations(R"(q << "DELETE FROM t WHERE x = " << x;)", "b").size(), 1U);
  EXPECT_EQ(
      violations(R"(std::string q = name + R"sql(INSERT INTO t VALUES (1))sql";)", "c").size(), 1U);
  EXPECT_EQ(violations(R"(auto v = tx.quote(name);)", "d").size(), 1U);
  EXPECT_EQ(violations(R"(tx.exec_params(query, 1);)", "e").size(), 1U);
  EXPECT_EQ(violations(R"(q.append("UPDATE t SET a = 1");)", "f").size(), 1U);
  // Parameterised statements and constants are fine.
  EXPECT_TRUE(violations(R"(tx.exec_params("SELECT 1 FROM t WHERE id = $1", id);)", "ok1").empty());
  EXPECT_TRUE(violations(R"(tx.exec_prepared(sql::kUserById.name, id); tx.exec0(kCreate);)", "ok2")
                  .empty());
  EXPECT_TRUE(
      violations(R"(throw Error("cannot connect: " + reason); // SELECT in a comment + x)", "ok3")
          .empty());
  EXPECT_TRUE(violations(R"(tx.exec0(m.sql);)", "ok4").empty());
}

TEST(SqlLint, NoStringBuiltSqlInDbOrService) {
  namespace fs = std::filesystem;
  int files = 0;
  std::vector<std::string> found;
  for (const char* module : {"db", "service"}) {
    const fs::path root = fs::path(FORKCAST_SOURCE_DIR) / module;
    if (!fs::exists(root)) continue;
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
      const auto ext = entry.path().extension();
      if (ext != ".cpp" && ext != ".hpp" && ext != ".h" && ext != ".cc") continue;
      std::ifstream in(entry.path());
      std::stringstream text;
      text << in.rdbuf();
      for (auto& v :
           violations(text.str(), fs::relative(entry.path(), FORKCAST_SOURCE_DIR).string())) {
        found.push_back(std::move(v));
      }
      ++files;
    }
  }
  EXPECT_GT(files, 5) << "the db/ sources were not found";
  std::string report;
  for (const auto& v : found) report += v + "\n";
  EXPECT_TRUE(found.empty()) << report;
}
