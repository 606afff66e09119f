// chuanspeed generate as a user runs it: the prompt text followed by the continuation as the
// tokenizer writes it after the prompt (the space SentencePiece drops at the start of a decoding
// kept), only ids the tokenizer has (a padded model vocabulary), a tiny temperature being greedy,
// JSON prompt files scored by exact match, and one clear line for bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/corpus/prompt_template.h"
#include "data/tokenizer.h"
#include "run_util.h"

namespace cs::test {
namespace {

const std::string kSrc = CS_SOURCE_DIR;
const std::string kTok = kSrc + "/assets/demo/tokenizer";

std::string tmp(const std::string& name) {
  const auto d = std::filesystem::path(testing::TempDir()) / ("cs_gcli_" + name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

// "1,2,3\n" -> {1, 2, 3}
std::vector<int32_t> ids_of(const std::string& out) {
  std::vector<int32_t> ids;
  for (size_t at = 0; at < out.size();) {
    size_t end = out.find_first_of(",\n", at);
    if (end == std::string::npos) end = out.size();
    if (end > at) ids.push_back(std::stoi(out.substr(at, end - at)));
    at = end + 1;
  }
  return ids;
}

std::string csv(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) {  // two appends: GCC 12 misreads "," + string (-Wrestrict)
    if (!s.empty()) s += ',';
    s += std::to_string(id);
  }
  return s;
}

// What the new tokens add to the prompt's decoding.
std::string continuation(const Tokenizer& tok, std::vector<int32_t> prompt, const std::vector<int32_t>& out) {
  const std::string head = tok.decode(prompt);
  prompt.insert(prompt.end(), out.begin(), out.end());
  const std::string full = tok.decode(prompt);
  EXPECT_EQ(full.rfind(head, 0), 0u) << full;
  return full.substr(head.size());
}

TEST(GenerateCli, JsonPromptFileIsScoredByExactMatch) {
  const std::string d = tmp("gen");
  ASSERT_EQ(run_binary("init --model tiny --vocab-size 1024 --seed 3 --save " + d + "/m").status, 0);
  std::ofstream(d + "/q.jsonl") << R"({"instruction": "What is 2 + 2?", "input": ""})" "\n";
  const std::string gen = "generate --load " + d + "/m --tokenizer-name-or-path " + kTok + " --max-new-tokens 3 --prompt-file ";
  auto r = run_binary(gen + d + "/q.jsonl");
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string prefix = "What is 2 + 2? -> ";
  ASSERT_EQ(r.out.rfind(prefix, 0), 0u) << r.out;
  std::string answer = r.out.substr(prefix.size());
  answer = answer.substr(0, answer.find('\n'));
  EXPECT_EQ(r.out.find("exact match"), std::string::npos);  // nothing to score against
  // The greedy answer scored against itself is right, against anything else wrong.
  nlohmann::json right = {{"instruction", "What is 2 + 2?"}, {"input", ""}, {"output", answer}, {"task", "add"}};
  nlohmann::json wrong = {{"instruction", "What is 2 + 2?"}, {"output", answer + "x"}, {"task", "add"}};
  std::ofstream(d + "/s.jsonl") << right.dump() << "\n" << wrong.dump() << "\n";
  r = run_binary(gen + d + "/s.jsonl");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("exact match: 1 / 2 = 50.0%"), std::string::npos) << r.out;
  EXPECT_EQ(count_matching_lines(r.out, "[right]"), 1) << r.out;
  std::ofstream(d + "/bad.jsonl") << "{\"instruction\": 3}\n";
  r = run_binary(gen + d + "/bad.jsonl");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("bad.jsonl:1: field 'instruction' is not a string"), std::string::npos) << r.err;
}

TEST(GenerateCli, PromptTextWithTheRealBaichuanTokenizerEqualsItsIds) {
  const std::string baichuan = kSrc + "/../shared/reference/baichuan-13b-base";
  if (!std::filesystem::exists(baichuan + "/tokenizer.model"))
    GTEST_SKIP() << "../shared/reference/baichuan-13b-base not present";
  const std::string d = tmp("baichuan");
  ASSERT_EQ(run_binary("init --model tiny --vocab-size 64000 --position-embedding-type alibi --seed 5 --save " + d + "/m").status, 0);
  const std::string prompt = "百川大模型 is a family of LLMs:";
  const Tokenizer tok(baichuan);
  const std::string ids = csv(tok.encode(prompt));
  const std::string gen = "generate --load " + d + "/m --max-new-tokens 6 ";
  const auto by_text = run_binary(gen + "--tokenizer-name-or-path " + baichuan + " --prompt '" + prompt + "'");
  const auto by_ids = run_binary(gen + "--prompt-ids " + ids);
  ASSERT_EQ(by_text.status, 0) << by_text.err;
  ASSERT_EQ(by_ids.status, 0) << by_ids.err;
  // The same greedy continuation: the text form prints the prompt and the new tokens' text as it
  // follows the prompt (decoded together, so a leading "▁" stays a space).
  const std::vector<int32_t> cont = ids_of(by_ids.out);
  ASSERT_EQ(cont.size(), 6u) << by_ids.out;
  EXPECT_EQ(by_text.out, prompt + continuation(tok, tok.encode(prompt), cont) + "\n");
}

// SentencePiece drops the leading "▁" of the first piece it decodes: "task" + decode("▁B", ...)
// printed "taskB...". The continuation is decoded together with the prompt.
TEST(GenerateCli, PromptTextKeepsTheSpaceBeforeTheContinuation) {
  const std::string d = tmp("space");
  ASSERT_EQ(run_binary("init --model tiny --vocab-size 1024 --save " + d + "/m").status, 0);
  const Tokenizer tok(kTok);
  const std::vector<int32_t> prompt_ids = tok.encode("task");
  const std::string gen = "generate --load " + d + "/m --max-new-tokens 3 ";
  const auto by_ids = run_binary(gen + "--prompt-ids " + csv(prompt_ids));
  ASSERT_EQ(by_ids.status, 0) << by_ids.err;
  const std::vector<int32_t> cont = ids_of(by_ids.out);
  ASSERT_EQ(cont.size(), 3u) << by_ids.out;
  const std::string text = continuation(tok, prompt_ids, cont);
  ASSERT_EQ(text.rfind(" ", 0), 0u) << "this model's continuation must start a new word for the test to bite: " << text;
  const auto by_text = run_binary(gen + "--tokenizer-name-or-path " + kTok + " --prompt task");
  ASSERT_EQ(by_text.status, 0) << by_text.err;
  EXPECT_EQ(by_text.out, "task" + text + "\n");
  // Exact-match scoring reads the same continuation (its ends trimmed).
  std::ofstream(d + "/q.jsonl") << nlohmann::json{{"prompt", "task"}, {"output", text.substr(1)}}.dump() << "\n";
  const auto scored = run_binary(gen + "--tokenizer-name-or-path " + kTok + " --prompt-file " + d + "/q.jsonl");
  ASSERT_EQ(scored.status, 0) << scored.err;
  EXPECT_NE(scored.out.find("exact match: 1 / 1"), std::string::npos) << scored.out;
}

// A model vocabulary padded past the tokenizer's (Megatron: 64000 -> 64512 at TP 8; here 2048 rows
// and 1024 pieces): ids >= 1024 made SentencePiece's Decode fail and the text come back empty.
TEST(GenerateCli, PaddedModelVocabularyChoosesOnlyTheTokenizersIds) {
  const std::string d = tmp("pad");
  ASSERT_EQ(run_binary("init --model tiny --vocab-size 2048 --save " + d + "/m").status, 0);
  const std::string gen = "generate --load " + d + "/m --tokenizer-name-or-path " + kTok + " --prompt task ";
  for (const std::string flags : {"--max-new-tokens 40 --temperature 1", "--max-new-tokens 40"}) {
    const auto r = run_binary(gen + flags);
    ASSERT_EQ(r.status, 0) << flags << "\n" << r.err;
    EXPECT_GT(r.out.size(), std::string("task \n").size()) << flags << ": " << r.out;
    EXPECT_EQ(r.out.rfind("task", 0), 0u) << r.out;
  }
  // Without a tokenizer the ids range over the whole model vocabulary.
  const auto ids = run_binary("generate --load " + d + "/m --prompt-ids 318 --max-new-tokens 60 --temperature 1");
  ASSERT_EQ(ids.status, 0) << ids.err;
  const auto out = ids_of(ids.out);
  EXPECT_TRUE(std::any_of(out.begin(), out.end(), [](int32_t id) { return id >= 1024; })) << ids.out;
  // A model vocabulary smaller than the tokenizer's is an error.
  ASSERT_EQ(run_binary("init --model tiny --vocab-size 512 --save " + d + "/small").status, 0);
  const auto r = run_binary("generate --load " + d + "/small --tokenizer-name-or-path " + kTok + " --prompt task");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_matching_lines(r.err, "error"), 1) << r.err;
  EXPECT_NE(r.err.find("vocabulary of 512 is smaller than the tokenizer's 1024"), std::string::npos) << r.err;
}

// logit / T overflowed for T < ~1e-308 and inf - inf made the least likely token win.
TEST(GenerateCli, TinyTemperatureIsGreedy) {
  const std::string d = tmp("temp");
  ASSERT_EQ(run_binary("init --model tiny --vocab-size 1024 --save " + d + "/m").status, 0);
  const std::string gen = "generate --load " + d + "/m --prompt-ids 318 --max-new-tokens 8";
  const auto greedy = run_binary(gen);
  const auto tiny = run_binary(gen + " --temperature 1e-310");
  ASSERT_EQ(greedy.status, 0) << greedy.err;
  ASSERT_EQ(tiny.status, 0) << tiny.err;
  EXPECT_EQ(tiny.out, greedy.out);
}

// Generation that ends at the model's positions, not at --max-new-tokens, says so in one line.
TEST(GenerateCli, StoppingAtTheModelsPositionsIsNoted) {
  const std::string d = tmp("cap");
  ASSERT_EQ(run_binary("init --model tiny --vocab-size 1024 --save " + d + "/m").status, 0);  // 64 positions
  const std::string gen = "generate --load " + d + "/m --prompt-ids 318,5 --max-new-tokens ";
  auto r = run_binary(gen + "1000");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(ids_of(r.out).size(), 62u) << r.out;
  EXPECT_EQ(count_matching_lines(r.err, "note: stopped after 62 new token(s), at the model's 64 positions (not at "
                                        "--max-new-tokens 1000)"), 1) << r.err;
  r = run_binary(gen + "5");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(ids_of(r.out).size(), 5u) << r.out;
  EXPECT_EQ(r.err.find("note"), std::string::npos) << r.err;
  // Several prompts: one line counting those cut short.
  std::ofstream(d + "/p.txt") << "task\n\nmore task\n";
  r = run_binary("generate --load " + d + "/m --tokenizer-name-or-path " + kTok + " --prompt-file " + d + "/p.txt");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count_matching_lines(r.out, "task"), 2) << r.out;
  EXPECT_EQ(count_matching_lines(r.err, "note: 2 of 2 prompts stopped at the model's 64 positions"), 1) << r.err;
  // A prompt in a file that leaves no room is named by its line.
  std::ofstream(d + "/long.txt") << "task\n\n" << std::string(200, 'x') << "\n";
  r = run_binary("generate --load " + d + "/m --tokenizer-name-or-path " + kTok + " --prompt-file " + d + "/long.txt");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("the prompt at " + d + "/long.txt:3 is "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tokens but the model has 64 positions"), std::string::npos) << r.err;
}

TEST(GenerateCli, EmptyPromptStartsFromBos) {
  const std::string d = tmp("empty");
  ASSERT_EQ(run_binary("init --model tiny --vocab-size 1024 --save " + d + "/m").status, 0);
  const Tokenizer tok(kTok);
  ASSERT_GE(tok.bos_id(), 0);
  const std::string gen = "generate --load " + d + "/m --max-new-tokens 4 ";
  const auto by_text = run_binary(gen + "--tokenizer-name-or-path " + kTok + " --prompt ''");
  const auto by_ids = run_binary(gen + "--prompt-ids " + std::to_string(tok.bos_id()));
  ASSERT_EQ(by_text.status, 0) << by_text.err;
  ASSERT_EQ(by_ids.status, 0) << by_ids.err;
  EXPECT_EQ(by_text.out, continuation(tok, {tok.bos_id()}, ids_of(by_ids.out)) + "\n");
}

// --prompt-type formats an Alpaca record with preprocess's template: the greedy answer is the one
// the prompt's ids give, and a template the tokenizer cannot write is one line, exit 2.
TEST(GenerateCli, PromptTypeFormatsAlpacaRecordsAsPreprocessDoes) {
  const std::string d = tmp("prompt_type");
  ASSERT_EQ(run_binary("init --model tiny --vocab-size 1024 --seq-length 160 --seed 4 --save " + d + "/m").status, 0);
  std::ofstream(d + "/q.jsonl") << R"({"instruction": "Add the two numbers.", "input": "3 and 4", "output": "7"})" "\n";
  const std::string gen = "generate --load " + d + "/m --max-new-tokens 5 ";
  const auto by_record = run_binary(gen + "--tokenizer-name-or-path " + kTok + " --prompt-type vicuna --prompt-file " + d + "/q.jsonl");
  ASSERT_EQ(by_record.status, 0) << by_record.err;
  const Tokenizer tok(kTok);
  const Sequence prompt = alpaca_pieces(PromptType::kVicuna, "Add the two numbers.", "3 and 4", nullptr);
  ASSERT_EQ(prompt.size(), 1u);
  EXPECT_EQ(prompt[0].text, std::string(kVicunaSystem) + " USER: Add the two numbers.\n3 and 4 ASSISTANT:");
  const auto by_ids = run_binary(gen + "--prompt-ids " + csv(tok.encode(prompt[0].text)));
  ASSERT_EQ(by_ids.status, 0) << by_ids.err;
  std::vector<int32_t> out = ids_of(by_ids.out);
  if (!out.empty() && out.back() == tok.eos_id()) out.pop_back();
  std::string answer = tok.decode(out);
  answer.erase(0, answer.find_first_not_of(" \t\n"));
  answer.erase(answer.find_last_not_of(" \t\n") + 1);
  EXPECT_NE(by_record.out.find("Add the two numbers. | 3 and 4 -> " + answer), std::string::npos) << by_record.out;
  const auto bad = run_binary(gen + "--tokenizer-name-or-path " + kTok + " --prompt-type baichuan --prompt-file " + d + "/q.jsonl");
  EXPECT_EQ(bad.status, 2) << bad.err;
  EXPECT_EQ(count_matching_lines(bad.err, "error"), 1) << bad.err;
  EXPECT_NE(bad.err.find("--prompt-type baichuan: the tokenizer"), std::string::npos) << bad.err;
}

TEST(GenerateCli, BadInputIsOneLineWithTheRightStatus) {
  const std::string d = tmp("bad");
  ASSERT_EQ(run_binary("init --model tiny --vocab-size 1024 --save " + d + "/m").status, 0);  // 64 positions
  ASSERT_EQ(run_binary("convert --input " + d + "/m --output " + d + "/ckpt --to native").status, 0);
  std::ofstream(d + "/empty.txt").flush();
  std::ofstream(d + "/blank.txt") << "  \n\n\t\n";
  std::string long_ids;
  for (int i = 0; i < 70; ++i) {  // two appends: GCC 12 misreads "," + string (-Wrestrict)
    if (i) long_ids += ',';
    long_ids += std::to_string(5 + i);
  }
  const std::string gen = "generate --load " + d + "/m ";
  const std::string text = gen + "--tokenizer-name-or-path " + kTok + " ";
  struct Case {
    std::string args, needle;
    int status;
  } cases[] = {
      {text + "--prompt-file " + d + "/empty.txt", "empty.txt: no prompts (the file is empty or blank)", 1},
      {text + "--prompt-file " + d + "/blank.txt", "blank.txt: no prompts (the file is empty or blank)", 1},
      {text + "--prompt '' --prompt-ids 5", "give exactly one of --prompt, --prompt-file or --prompt-ids", 2},
      {gen + "--prompt-ids 5 --top-k -4", "--top-k: expected a number 0 or greater, got '-4'", 2},
      {gen + "--prompt-ids 5 --temperature -1", "--temperature: expected a number 0 or greater, got '-1'", 2},
      {gen + "--prompt-ids " + long_ids, "the prompt is 70 tokens but the model has 64 positions", 1},
      {gen + "--prompt-ids " + long_ids.substr(0, long_ids.find(",69,")),
       "the prompt is 64 tokens but the model has 64 positions; expected at most 63", 1},
      {"generate --load " + d + "/ckpt/iter_0000000 --prompt-ids 5",
       "Hint: pass " + d + "/ckpt (the folder holding latest_checkpointed_iteration.txt", 1},
      {"generate --load " + d + "/ckpt/iter_0000000/ --prompt-ids 5", "Hint: pass " + d + "/ckpt (", 1},
      // convert (and eval, through the same loader as generate) refuse it the same way
      {"convert --input " + d + "/ckpt/iter_0000000 --output " + d + "/conv", "one iteration folder", 1},
  };
  for (const auto& c : cases) {
    const auto r = run_binary(c.args);
    EXPECT_EQ(r.status, c.status) << c.args << "\n" << r.err;
    EXPECT_EQ(count_matching_lines(r.err, "error"), 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_LT(r.err.size(), 400u) << r.err;
    EXPECT_EQ(r.out, "") << c.args;
  }
  // The checkpoint root loads.
  EXPECT_EQ(run_binary("generate --load " + d + "/ckpt --prompt-ids 5 --max-new-tokens 2").status, 0);
}

}  // namespace
}  // namespace cs::test
