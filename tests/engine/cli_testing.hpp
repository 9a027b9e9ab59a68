// Helpers for the tests that run the built mambascope-cli (MAMBASCOPE_CLI_PATH): spawning it with
// captured stdout/stderr, scratch folders, model folders made from the HF fixtures (copied, then
// broken on purpose), and a tokenizer.json cut down to the fixtures' 512-row vocabulary so that
// any text can be fed to them.
#pragma once
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

#ifndef MAMBASCOPE_CLI_PATH  // tests/CMakeLists.txt defines it only when the CLI target exists
#define MAMBASCOPE_CLI_PATH ""
#endif

namespace cli_testing {

namespace fs = std::filesystem;

inline const std::string kFixtures = MAMBASCOPE_FIXTURES_DIR "/hf/";

inline std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

inline void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << bytes;
}

// A folder under the system temp dir, removed with everything in it at destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "mambascope-cli-test-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

struct Run {
  int rc = -1;
  std::string out, err;
  // stderr without the warning lines the model loader may print.
  std::vector<std::string> error_lines() const {
    std::vector<std::string> lines;
    std::istringstream in(err);
    std::string l;
    while (std::getline(in, l))
      if (!l.empty() && l.find("mambascope-cli: warning:") != 0) lines.push_back(l);
    return lines;
  }
};

// Starts the CLI with args, stdin from `input`, stdout/stderr into files of `dir`.
class Child {
 public:
  Child(const std::vector<std::string>& args, const fs::path& dir, const std::string& input = "")
      : dir_(dir) {
    write_file(dir_ / "stdin.txt", input);
    std::vector<std::string> argv_s = {MAMBASCOPE_CLI_PATH};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : argv_s) argv.push_back(s.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    const std::string in = (dir_ / "stdin.txt").string(), out = (dir_ / "stdout.txt").string(),
                      err = (dir_ / "stderr.txt").string();
    posix_spawn_file_actions_addopen(&fa, 0, in.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  pid_t pid() const { return pid_; }
  std::string stdout_so_far() const { return slurp(dir_ / "stdout.txt"); }
  Run wait() {
    Run r;
    int status = 0;
    if (pid_ > 0 && waitpid(pid_, &status, 0) == pid_)
      r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = slurp(dir_ / "stdout.txt");
    r.err = slurp(dir_ / "stderr.txt");
    return r;
  }

 private:
  fs::path dir_;
  pid_t pid_ = -1;
};

inline Run run_cli(const std::vector<std::string>& args, const std::string& input = "") {
  TempDir io;
  return Child(args, io.path(), input).wait();
}

// A copy of an HF fixture folder (config.json and safetensors files) to break on purpose.
inline fs::path copy_fixture(const std::string& name, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(kFixtures + name)) {
    const std::string f = e.path().filename().string();
    if (f == "config.json" || f.find(".safetensors") != std::string::npos)
      fs::copy_file(e.path(), to / f, fs::copy_options::overwrite_existing);
  }
  return to;
}

// The GPT-NeoX tokenizer restricted to ids < max_id: the same pre-tokenizer and decoder, the
// merges whose parts and result stay below max_id (in their original order).
inline std::string small_tokenizer_json(int max_id) {
  auto t = nlohmann::json::parse(
      slurp(MAMBASCOPE_SOURCE_DIR "/assets/tokenizers/gpt-neox-20b/tokenizer.json"));
  nlohmann::json vocab = nlohmann::json::object();
  for (auto& [k, v] : t["model"]["vocab"].items())
    if (v.get<int>() < max_id) vocab[k] = v;
  nlohmann::json merges = nlohmann::json::array();
  for (auto& m : t["model"]["merges"]) {
    std::string a, b;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    }
    if (vocab.contains(a) && vocab.contains(b) && vocab.contains(a + b)) merges.push_back(m);
  }
  nlohmann::json added = nlohmann::json::array();
  for (auto& a : t["added_tokens"])
    if (a["id"].get<int>() < max_id) added.push_back(a);
  t["model"]["vocab"] = vocab;
  t["model"]["merges"] = merges;
  t["added_tokens"] = added;
  return t.dump();
}

// tied_fp32 with a tokenizer whose every id fits its embedding: any text can be fed.
inline fs::path text_model(const fs::path& to) {
  copy_fixture("tied_fp32", to);
  write_file(to / "tokenizer.json", small_tokenizer_json(512));
  return to;
}

// Skips the test when the CLI was not built into this tree.
class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string(MAMBASCOPE_CLI_PATH).empty() || !fs::exists(MAMBASCOPE_CLI_PATH))
      GTEST_SKIP() << "mambascope-cli is not built";
    // Fixture folders ship no tokenizer: the CLI finds the GPT-NeoX one here, wherever the build
    // is.
    setenv("MAMBASCOPE_ASSETS_DIR", MAMBASCOPE_SOURCE_DIR "/assets", 0);
  }
  TempDir tmp;
};

}  // namespace cli_testing
