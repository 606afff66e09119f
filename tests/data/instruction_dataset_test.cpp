// preprocess --is-instruction-dataset: the loss mask dataset (uint8, the text dataset's lengths and
// documents), what 1 and 0 mark (an Alpaca output and its EOD; each assistant turn and its EOS),
// the context tokens being exactly the prompt `generate` tokenizes, the text dataset being
// byte-identical to the run without the flag, the templates (prompt_template.h) and their errors.
// The Baichuan-13B-Chat template needs the real tokenizer from ../shared (skipped without it).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/corpus/handlers.h"
#include "data/corpus/preprocess.h"
#include "data/corpus/prompt_template.h"
#include "data/indexed_dataset.h"
#include "data/parquet/parquet_reader.h"
#include "data/tokenizer.h"
#include "mmidx_test_util.h"

namespace cs {
namespace {

const std::string kSrc = CS_SOURCE_DIR;
const std::string kTok = kSrc + "/assets/demo/tokenizer";
const std::string kBaichuan = kSrc + "/../shared/reference/baichuan-13b-base";

std::string tmp_dir(const std::string& name) {
  const auto d = std::filesystem::path(testing::TempDir()) / ("cs_sft_" + name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

PreprocessOptions opts(const std::string& in, const std::string& prefix, const std::string& handler) {
  PreprocessOptions o;
  o.inputs = {in};
  o.output_prefix = prefix;
  o.tokenizer = kTok;
  o.handler = handler;
  o.log_interval = 0;
  return o;
}

// Each document as one id list (preprocess writes one sequence per document for these handlers).
std::vector<std::vector<int32_t>> read_docs(const std::string& prefix, DType* dtype = nullptr) {
  IndexedDataset ds(prefix);
  if (dtype) *dtype = ds.dtype();
  std::vector<std::vector<int32_t>> docs;
  for (int64_t d = 0; d < ds.num_docs(); ++d) {
    docs.emplace_back();
    for (int64_t s = ds.doc_index()[d]; s < ds.doc_index()[d + 1]; ++s) {
      std::vector<int32_t> ids(static_cast<size_t>(ds.length(s)));
      ds.read(s, 0, ds.length(s), ids.data());
      docs.back().insert(docs.back().end(), ids.begin(), ids.end());
    }
  }
  return docs;
}

// The runs of equal mask values: (mask value, ids) in order.
std::vector<std::pair<int32_t, std::vector<int32_t>>> spans(const std::vector<int32_t>& ids,
                                                             const std::vector<int32_t>& mask) {
  std::vector<std::pair<int32_t, std::vector<int32_t>>> out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (out.empty() || out.back().first != mask[i]) out.push_back({mask[i], {}});
    out.back().second.push_back(ids[i]);
  }
  return out;
}

// Runs preprocess with and without --is-instruction-dataset; checks the text bytes are equal and
// the mask has the same structure. Returns (text docs, mask docs).
std::pair<std::vector<std::vector<int32_t>>, std::vector<std::vector<int32_t>>> run_both(PreprocessOptions o,
                                                                                       const std::string& d) {
  o.output_prefix = d + "/plain";
  run_preprocess(o);
  o.output_prefix = d + "/sft";
  o.instruction = true;
  const PreprocessStats st = run_preprocess(o);
  EXPECT_EQ(st.output_prefixes, (std::vector<std::string>{d + "/sft_text_document", d + "/sft_loss_mask_document"}));
  for (const char* ext : {".bin", ".idx"})
    EXPECT_EQ(test::file_bytes(d + "/plain_text_document" + ext), test::file_bytes(d + "/sft_text_document" + ext))
        << ext;
  IndexedDataset text(d + "/sft_text_document"), mask(d + "/sft_loss_mask_document");
  EXPECT_EQ(mask.dtype(), DType::U8);
  EXPECT_EQ(mmidx_dtype_code(mask.dtype()), 1);
  EXPECT_EQ(mask.num_docs(), text.num_docs());
  EXPECT_EQ(mask.doc_index(), text.doc_index());
  EXPECT_EQ(mask.size(), text.size());
  for (int64_t s = 0; s < text.size(); ++s) EXPECT_EQ(mask.length(s), text.length(s)) << s;
  auto docs = read_docs(d + "/sft_text_document");
  auto masks = read_docs(d + "/sft_loss_mask_document");
  for (const auto& m : masks)
    for (int32_t v : m) EXPECT_TRUE(v == 0 || v == 1) << v;
  return {docs, masks};
}

TEST(InstructionDataset, AlpacaMaskIsTheOutputAndItsEodAndTheContextIsThePrompt) {
  const std::string d = tmp_dir("alpaca");
  const std::string parquet = kSrc + "/tests/fixtures/parquet/alpaca.parquet";
  PreprocessOptions o = opts(parquet, "", "alpaca");
  o.append_eod = true;
  const auto [docs, masks] = run_both(o, d);
  std::vector<nlohmann::json> rows;
  ParquetReader(parquet).for_each_row({"instruction", "input", "output"}, [&](const ParquetRow& row) {
    rows.push_back({{"instruction", std::string(*row.string(0))}, {"input", std::string(*row.string(1))},
                    {"output", std::string(*row.string(2))}});
  });
  ASSERT_EQ(docs.size(), rows.size());
  ASSERT_GT(rows.size(), 0u);
  const Tokenizer tok(kTok);
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string prompt = alpaca_prompt(rows[i]["instruction"], rows[i]["input"]);
    const std::string output = rows[i]["output"];
    const auto sp = spans(docs[i], masks[i]);
    ASSERT_EQ(sp.size(), 2u) << i;  // the prompt (0), then the output and EOD (1)
    EXPECT_EQ(sp[0].first, 0);
    EXPECT_EQ(sp[0].second, tok.encode(prompt)) << i;  // what generate feeds the model
    EXPECT_EQ(tok.decode(sp[0].second), prompt);
    std::vector<int32_t> response = sp[1].second;
    ASSERT_EQ(response.back(), tok.eos_id());
    response.pop_back();
    EXPECT_EQ(tok.decode(response), output) << i;
  }
}

TEST(InstructionDataset, DemoCorporaKeepTheirTextBytes) {
  // Every record of the demo's Alpaca JSON and FastChat conversations: the joined tokenization
  // starts with the context's own ids, so the text dataset is the one written without the flag.
  const std::string d = tmp_dir("demo");
  run_both(opts(kSrc + "/assets/demo/alpaca_demo.json", "", "alpaca"), d + "/a");
  const auto [docs, masks] = run_both(opts(kSrc + "/assets/demo/conversations_demo.json", "", "conversation"), d + "/c");
  const Tokenizer tok(kTok);
  for (size_t i = 0; i < docs.size(); ++i) {
    // Context and answers alternate, each answer ending with EOS, the transcript with an answer.
    const auto sp = spans(docs[i], masks[i]);
    ASSERT_GE(sp.size(), 2u);
    EXPECT_EQ(sp.front().first, 0);
    EXPECT_EQ(sp.back().first, 1);
    for (const auto& [m, ids] : sp) {
      if (m == 1) {
        EXPECT_EQ(ids.back(), tok.eos_id());
      }
    }
  }
}

TEST(InstructionDataset, ConversationTrainsEachAssistantTurnOnly) {
  const std::string d = tmp_dir("conv");
  const nlohmann::json recs = nlohmann::json::array(
      {{{"id", "a"},
        {"conversations",
         {{{"from", "gpt"}, {"value", "dropped"}},
          {{"from", "human"}, {"value", "Add 345 and 27."}},
          {{"from", "gpt"}, {"value", "372"}},
          {{"from", "human"}, {"value", "Reverse the word garden."}},
          {{"from", "gpt"}, {"value", "nedrag"}}}}},
       {{"id", "b"}, {"conversations", {{{"from", "human"}, {"value", "Hi"}}, {{"from", "gpt"}, {"value", "Hello"}},
                                        {{"from", "human"}, {"value", "left open"}}}}}});
  std::ofstream(d + "/c.json") << recs.dump();
  PreprocessOptions o = opts(d + "/c.json", "", "conversation");
  o.append_eod = true;  // after a user turn: the EOD is context
  const auto [docs, masks] = run_both(o, d);
  ASSERT_EQ(docs.size(), 2u);
  const Tokenizer tok(kTok);
  const std::string sys = kVicunaSystem;
  auto texts = [&](const std::vector<int32_t>& ids, const std::vector<int32_t>& mask) {
    std::vector<std::pair<int32_t, std::string>> out;
    for (auto [m, span] : spans(ids, mask)) {
      std::string eos;
      if (span.back() == tok.eos_id()) {
        span.pop_back();
        eos = "</s>";
      }
      out.push_back({m, tok.decode(span) + eos});  // decode drops a leading "▁": " 372" reads "372"
    }
    return out;
  };
  using V = std::vector<std::pair<int32_t, std::string>>;
  EXPECT_EQ(texts(docs[0], masks[0]), (V{{0, sys + " USER: Add 345 and 27. ASSISTANT:"},
                                         {1, "372</s>"},
                                         {0, "USER: Reverse the word garden. ASSISTANT:"},
                                         {1, "nedrag</s>"}}));
  EXPECT_EQ(texts(docs[1], masks[1]), (V{{0, sys + " USER: Hi ASSISTANT:"}, {1, "Hello</s>"}, {0, "USER: left open </s>"}}));
  // The context of the first answer is what generate tokenizes for the same question.
  const Sequence prompt = alpaca_pieces(PromptType::kVicuna, "Add 345 and 27.", "", nullptr);
  ASSERT_EQ(prompt.size(), 1u);
  EXPECT_EQ(spans(docs[0], masks[0])[0].second, tok.encode(prompt[0].text));
}

TEST(InstructionDataset, PieceBoundaryKeepsTheContextIds) {
  // A trained piece whose joined tokenization would change the context's ids is tokenized on its
  // own: the context keeps exactly its ids. Fake encoder: one id per character, except that "ab"
  // is one id (100), so "a" + "b" joined would merge across the boundary.
  const EncodeFn enc = [](std::string_view t, std::vector<int32_t>& out) {
    for (size_t i = 0; i < t.size(); ++i) {
      if (t.substr(i, 2) == "ab") {
        out.push_back(100);
        ++i;
      } else {
        out.push_back(t[i]);
      }
    }
  };
  std::vector<int32_t> ids, mask;
  encode_pieces({{"xa"}, {"bc", true, true}}, enc, 2, ids, &mask);
  EXPECT_EQ(ids, (std::vector<int32_t>{'x', 'a', 'b', 'c', 2}));
  EXPECT_EQ(mask, (std::vector<int32_t>{0, 0, 1, 1, 1}));
  ids.clear();
  encode_pieces({{"xa"}, {"bc", true, true}}, enc, 2, ids, nullptr);  // pretraining: one text
  EXPECT_EQ(ids, (std::vector<int32_t>{'x', 100, 'c', 2}));
}

TEST(InstructionDataset, TemplatesVerbatim) {
  const std::string sys = kVicunaSystem;
  const Sequence v = alpaca_pieces(PromptType::kVicuna, "Sort.", "7 2", nullptr);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].text, sys + " USER: Sort.\n7 2 ASSISTANT:");
  const std::string out = "2 7";
  const Sequence b = alpaca_pieces(PromptType::kBaichuan, "Sort.", "7 2", &out);
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(b[0].token, kBaichuanUserToken);
  EXPECT_EQ(b[1].text, "Sort.\n7 2");
  EXPECT_FALSE(b[1].trained);
  EXPECT_EQ(b[2].token, kBaichuanAssistantToken);
  EXPECT_FALSE(b[2].trained);
  EXPECT_EQ(b[3].text, out);
  EXPECT_TRUE(b[3].trained && b[3].eos_after);
  const Sequence open = alpaca_pieces(PromptType::kBaichuan, "Sort.", "", nullptr);
  ASSERT_EQ(open.size(), 3u);
  EXPECT_EQ(open[1].text, "Sort.");
  EXPECT_EQ(open[2].token, kBaichuanAssistantToken);
  const Sequence a = alpaca_pieces(PromptType::kAlpaca, "Sort.", "", &out);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].text + a[1].text, "Below is an instruction that describes a task. Write a response that appropriately "
                                   "completes the request.\n\n### Instruction:\nSort.\n\n### Response:\n2 7");
}

TEST(InstructionDataset, BadCombinationsAreUsageErrors) {
  const std::string d = tmp_dir("bad");
  std::ofstream(d + "/a.jsonl") << R"({"instruction": "i", "output": "o", "text": "t"})" "\n";
  auto usage = [&](PreprocessOptions o, const std::string& needle) {
    try {
      run_preprocess(o);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const UsageError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  };
  PreprocessOptions o = opts(d + "/a.jsonl", d + "/o", "plain");
  o.instruction = true;
  usage(o, "--is-instruction-dataset: --handler-name plain");
  o = opts(d + "/a.jsonl", d + "/o", "alpaca");
  o.prompt_type = "baichuan";
  usage(o, "--prompt-type baichuan: the tokenizer");
  o.prompt_type = "chatml";
  usage(o, "--prompt-type chatml: expected alpaca, vicuna or baichuan");
  o = opts(d + "/a.jsonl", d + "/o", "conversation");
  o.prompt_type = "alpaca";
  usage(o, "--prompt-type alpaca: the Alpaca template");
  for (const auto& e : std::filesystem::directory_iterator(d))
    EXPECT_EQ(e.path().filename().string().rfind("o_", 0), std::string::npos) << "left behind: " << e.path();
}

TEST(InstructionDataset, BaichuanChatTemplateWithTheRealTokenizer) {
  if (!std::filesystem::exists(kBaichuan + "/tokenizer.model"))
    GTEST_SKIP() << "../shared/reference/baichuan-13b-base not present: the baichuan template needs its tokenizer";
  const Tokenizer tok(kBaichuan);
  EXPECT_EQ(tok.piece(kBaichuanUserToken), kBaichuanUserPiece);
  EXPECT_EQ(tok.piece(kBaichuanAssistantToken), kBaichuanAssistantPiece);
  const std::string d = tmp_dir("baichuan");
  std::ofstream(d + "/a.jsonl") << R"({"instruction": "把下面的数字排序。", "input": "7 2 9", "output": "2 7 9"})" "\n"
                                << R"({"instruction": "Say hi.", "output": "Hi!"})" "\n";
  std::ofstream(d + "/c.json") << R"([{"conversations": [{"from": "human", "value": "你好"}, {"from": "gpt", "value": "你好！"},
                                     {"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}]}])";
  PreprocessOptions o = opts(d + "/a.jsonl", "", "alpaca");
  o.tokenizer = kBaichuan;
  o.prompt_type = "baichuan";
  o.append_eod = true;  // already ends with EOS: no second one
  const auto [docs, masks] = run_both(o, d + "/a");
  auto cat = [](std::initializer_list<std::vector<int32_t>> parts) {
    std::vector<int32_t> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  };
  auto ones = [](size_t n, int32_t v) { return std::vector<int32_t>(n, v); };
  // build_chat_input: role token, then tokenizer.encode(content) on its own.
  const auto q0 = tok.encode("把下面的数字排序。\n7 2 9"), a0 = tok.encode("2 7 9");
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0], cat({{195}, q0, {196}, a0, {2}}));
  EXPECT_EQ(masks[0], cat({ones(q0.size() + 2, 0), ones(a0.size() + 1, 1)}));
  const auto q1 = tok.encode("Say hi."), a1 = tok.encode("Hi!");
  EXPECT_EQ(docs[1], cat({{195}, q1, {196}, a1, {2}}));
  EXPECT_EQ(masks[1], cat({ones(q1.size() + 2, 0), ones(a1.size() + 1, 1)}));

  o = opts(d + "/c.json", "", "conversation");
  o.tokenizer = kBaichuan;
  o.prompt_type = "baichuan";
  const auto [cdocs, cmasks] = run_both(o, d + "/c");
  const auto u0 = tok.encode("你好"), r0 = tok.encode("你好！"), u1 = tok.encode("2+2?"), r1 = tok.encode("4");
  ASSERT_EQ(cdocs.size(), 1u);
  EXPECT_EQ(cdocs[0], cat({{195}, u0, {196}, r0, {2}, {195}, u1, {196}, r1, {2}}));
  EXPECT_EQ(cmasks[0], cat({ones(u0.size() + 2, 0), ones(r0.size() + 1, 1), ones(u1.size() + 2, 0),
                            ones(r1.size() + 1, 1)}));
}

}  // namespace
}  // namespace cs
