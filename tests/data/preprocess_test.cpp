// chuanspeed preprocess end to end, at the library level: the same tokens whatever the input
// form (Parquet, JSON array, JSON Lines) and the worker count, the ids SentencePiece gives each
// record, Megatron's document structure (empty documents, sentence lists, --append-eod), several
// keys, and a bad record that names its file and line and leaves no output behind.
#include "data/corpus/preprocess.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/corpus/handlers.h"
#include "data/corpus/record_source.h"
#include "data/indexed_dataset.h"
#include "data/parquet/parquet_reader.h"
#include "data/tokenizer.h"
#include "mmidx_test_util.h"

namespace cs {
namespace {

const std::string kTok = std::string(CS_SOURCE_DIR) + "/assets/demo/tokenizer";
const std::string kParquet = std::string(CS_SOURCE_DIR) + "/tests/fixtures/parquet/alpaca.parquet";

std::string tmp_dir(const std::string& name) {
  const auto d = std::filesystem::path(testing::TempDir()) / ("cs_pre_" + name);
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

std::vector<nlohmann::json> parquet_rows(const std::string& path) {
  std::vector<nlohmann::json> rows;
  ParquetReader r(path);
  r.for_each_row({"instruction", "input", "output", "text"}, [&](const ParquetRow& row) {
    rows.push_back({{"instruction", std::string(*row.string(0))}, {"input", std::string(*row.string(1))},
                    {"output", std::string(*row.string(2))}, {"text", std::string(*row.string(3))}});
  });
  return rows;
}

// Every sequence of every document, as int32 lists.
std::vector<std::vector<std::vector<int32_t>>> read_docs(const std::string& prefix) {
  IndexedDataset ds(prefix);
  std::vector<std::vector<std::vector<int32_t>>> docs;
  for (int64_t d = 0; d < ds.num_docs(); ++d) {
    docs.emplace_back();
    for (int64_t s = ds.doc_index()[d]; s < ds.doc_index()[d + 1]; ++s) {
      std::vector<int32_t> ids(static_cast<size_t>(ds.length(s)));
      ds.read(s, 0, ds.length(s), ids.data());
      docs.back().push_back(ids);
    }
  }
  return docs;
}

PreprocessOptions opts(const std::vector<std::string>& in, const std::string& prefix) {
  PreprocessOptions o;
  o.inputs = in;
  o.output_prefix = prefix;
  o.tokenizer = kTok;
  o.log_interval = 0;
  return o;
}

TEST(PreprocessHandlers, AlpacaEqualsTheTextColumnOfAlpacaParquet) {
  const auto h = make_handler("alpaca", {});
  int with_input = 0;
  for (const auto& row : parquet_rows(kParquet)) {
    std::vector<DocumentText> out;
    h->handle(row, "row", out);
    ASSERT_EQ(out.size(), 1u);
    ASSERT_EQ(out[0].size(), 1u);
    EXPECT_EQ(out[0][0][0].text, row["text"].get<std::string>());
    with_input += !row["input"].get<std::string>().empty();
  }
  EXPECT_GT(with_input, 0);  // both templates exercised
}

TEST(PreprocessHandlers, AlpacaKeepsPlaceholderTextLiteral) {
  std::vector<DocumentText> out;
  make_handler("alpaca", {})->handle({{"instruction", "say {output}"}, {"input", nullptr}, {"output", "{input}"}}, "r", out);
  EXPECT_NE(out[0][0][0].text.find("### Instruction:\nsay {output}\n\n### Response:\n{input}"), std::string::npos);
}

TEST(PreprocessHandlers, ConversationIsAVicunaTranscriptWithEosAfterEachAnswer) {
  const nlohmann::json rec = {{"id", "x"},
                              {"conversations",
                               {{{"from", "gpt"}, {"value", "dropped"}},
                                {{"from", "human"}, {"value", "Hi"}},
                                {{"from", "gpt"}, {"value", "Hello!"}},
                                {{"from", "human"}, {"value", "2+2?"}},
                                {{"from", "gpt"}, {"value", "4"}}}}};
  std::vector<DocumentText> out;
  make_handler("conversation", {})->handle(rec, "r", out);
  ASSERT_EQ(out[0].size(), 1u);
  const Sequence& s = out[0][0];
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].text, std::string(kVicunaSystem) + " USER: Hi ASSISTANT: Hello!");
  EXPECT_EQ(s[1].text, "USER: 2+2? ASSISTANT: 4");
  EXPECT_TRUE(s[0].eos_after && s[1].eos_after);
}

TEST(PreprocessHandlers, BadRecordsAreOneClearLine) {
  auto err = [](const std::string& handler, const nlohmann::json& rec) {
    std::vector<DocumentText> out;
    try {
      make_handler(handler, {"text"})->handle(rec, "f.json:7", out);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(err("plain", {{"txt", "a"}}).find("f.json:7: the record has no field 'text'"), std::string::npos);
  EXPECT_NE(err("plain", {{"text", 3}}).find("field 'text' is a JSON number, not a string"), std::string::npos);
  EXPECT_NE(err("plain", nlohmann::json::array()).find("the record is a JSON array, not an object"), std::string::npos);
  EXPECT_NE(err("alpaca", {{"instruction", "a"}}).find("no field 'output'"), std::string::npos);
  const nlohmann::json twice = {{"conversations", {{{"from", "human"}, {"value", "a"}}, {{"from", "human"}, {"value", "b"}}}}};
  EXPECT_NE(err("conversation", twice).find("f.json:7 turn 1: two human turns in a row"), std::string::npos);
  const nlohmann::json who = {{"conversations", {{{"from", "bot"}, {"value", "a"}}}}};
  EXPECT_NE(err("conversation", who).find("'from' is 'bot'"), std::string::npos);
  EXPECT_THROW(make_handler("sharegpt", {}), UsageError);
  // A value quoted in a message is escaped and cut short: one line, whatever the record holds.
  const nlohmann::json odd = {{"conversations", {{{"from", "bot\nsecond line " + std::string(5000, 'x')}, {"value", "a"}}}}};
  const std::string msg = err("conversation", odd);
  EXPECT_NE(msg.find("'from' is 'bot\\nsecond line xxx"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_LT(msg.size(), 400u) << msg;
}

// nlohmann-json's message quotes the whole token it last read: a long string with a bad byte at
// its end gave a message as long as the record, with the raw byte in it.
TEST(PreprocessHandlers, NotValidJsonIsOneShortLine) {
  RawRecord r;
  r.json_text = "{\"text\": \"" + std::string(100000, 'y') + "\xFF\"}";
  r.position = 9;
  try {
    parse_record({"f.jsonl"}, r);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("f.jsonl:9: not valid JSON"), std::string::npos) << msg;
    EXPECT_NE(msg.find("ill-formed UTF-8 byte"), std::string::npos) << msg;
    EXPECT_NE(msg.find("yyy\\xFF"), std::string::npos) << msg;  // the tail, where the error is
    EXPECT_LT(msg.size(), 500u) << msg;
    EXPECT_EQ(msg.find('\xFF'), std::string::npos) << msg;
  }
}

TEST(Preprocess, SameBytesFromParquetJsonAndJsonlAndAnyWorkerCount) {
  const std::string d = tmp_dir("forms");
  const auto rows = parquet_rows(kParquet);
  nlohmann::json arr = nlohmann::json::array();
  std::ofstream jl(d + "/a.jsonl");
  for (auto r : rows) {
    r.erase("text");
    arr.push_back(r);
    jl << r.dump() << "\n";
  }
  jl.close();
  std::ofstream(d + "/a.json") << arr.dump(2);
  std::vector<test::Bytes> bins, idxs;
  for (const auto& [in, workers] : std::vector<std::pair<std::string, int>>{
           {kParquet, 1}, {d + "/a.json", 1}, {d + "/a.jsonl", 1}, {d + "/a.jsonl", 2}, {kParquet, 3}}) {
    PreprocessOptions o = opts({in}, d + "/out" + std::to_string(bins.size()));
    o.handler = "alpaca";
    o.append_eod = true;
    o.workers = workers;
    o.batch_records = 3;  // many batches, so workers finish out of order
    const PreprocessStats st = run_preprocess(o);
    EXPECT_EQ(st.documents, int64_t(rows.size()));
    bins.push_back(test::file_bytes(st.output_prefixes[0] + ".bin"));
    idxs.push_back(test::file_bytes(st.output_prefixes[0] + ".idx"));
  }
  for (size_t i = 1; i < bins.size(); ++i) {
    EXPECT_EQ(bins[i], bins[0]) << i;
    EXPECT_EQ(idxs[i], idxs[0]) << i;
  }
  // And the tokens are SentencePiece's ids of the text column, each document ending with EOS.
  const Tokenizer tok(kTok);
  const auto docs = read_docs(d + "/out0_text_document");
  ASSERT_EQ(docs.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    auto want = tok.encode(rows[i]["text"].get<std::string>());
    want.push_back(tok.eos_id());
    ASSERT_EQ(docs[i].size(), 1u);
    EXPECT_EQ(docs[i][0], want) << i;
  }
}

TEST(Preprocess, MegatronDocumentStructure) {
  const std::string d = tmp_dir("structure");
  std::ofstream(d + "/in.jsonl") << R"({"text": "abc 12", "title": "T"})" "\n"
                                 << R"({"text": "", "title": "empty text"})" "\n"
                                 << R"({"text": ["one", "", "two"], "title": ""})" "\n";
  PreprocessOptions o = opts({d}, d + "/out/ds");
  o.json_keys = {"text", "title"};
  o.append_eod = true;
  const PreprocessStats st = run_preprocess(o);
  ASSERT_EQ(st.output_prefixes.size(), 2u);
  const Tokenizer tok(kTok);
  const int32_t eos = tok.eos_id();
  auto with_eos = [&](std::vector<int32_t> v) {
    v.push_back(eos);
    return v;
  };
  const auto text = read_docs(d + "/out/ds_text_document");
  ASSERT_EQ(text.size(), 3u);
  EXPECT_EQ(text[0], (std::vector<std::vector<int32_t>>{with_eos(tok.encode("abc 12"))}));
  EXPECT_TRUE(text[1].empty());  // an empty document, kept as Megatron keeps it (no EOD)
  // A list is a document of sentences; the empty one is dropped and EOD ends the last.
  EXPECT_EQ(text[2], (std::vector<std::vector<int32_t>>{tok.encode("one"), with_eos(tok.encode("two"))}));
  const auto title = read_docs(d + "/out/ds_title_document");
  ASSERT_EQ(title.size(), 3u);
  EXPECT_EQ(title[1], (std::vector<std::vector<int32_t>>{with_eos(tok.encode("empty text"))}));
  EXPECT_TRUE(title[2].empty());
}

TEST(Preprocess, ConversationsEndEachAnswerWithEosOnce) {
  const std::string d = tmp_dir("conv");
  std::ofstream(d + "/c.json") << R"([{"id": "1", "conversations": [{"from": "human", "value": "Hi"},
      {"from": "gpt", "value": "Hello"}]}])";
  PreprocessOptions o = opts({d + "/c.json"}, d + "/c");
  o.handler = "conversation";
  o.append_eod = true;
  run_preprocess(o);
  const Tokenizer tok(kTok);
  auto want = tok.encode(std::string(kVicunaSystem) + " USER: Hi ASSISTANT: Hello");
  want.push_back(tok.eos_id());
  const auto docs = read_docs(d + "/c_text_document");
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(docs[0][0], want);
}

// A SentencePiece model without BOS and EOS pieces (ids -1): -1 was written as a token (an int32
// dataset took it silently; uint16 failed with a hint about the vocabulary size).
TEST(Preprocess, TokenizerWithoutBosAndEos) {
  const std::string d = tmp_dir("noeos");
  std::filesystem::create_directories(d + "/tok");
  std::filesystem::copy_file(std::string(CS_SOURCE_DIR) + "/tests/fixtures/tokenizer/no_bos_eos.model",
                             d + "/tok/tokenizer.model");
  std::ofstream(d + "/tok/tokenizer_config.json") << R"({"add_bos_token": true, "add_eos_token": true})";
  const Tokenizer tok(d + "/tok");
  ASSERT_LT(tok.eos_id(), 0);
  ASSERT_LT(tok.bos_id(), 0);
  std::ofstream(d + "/in.jsonl") << R"({"text": "hello world"})" "\n";
  std::ofstream(d + "/c.json") << R"([{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}])";
  PreprocessOptions o = opts({d + "/in.jsonl"}, d + "/p");
  o.tokenizer = d + "/tok";
  const PreprocessStats st = run_preprocess(o);  // add_bos / add_eos: nothing to add
  EXPECT_EQ(read_docs(st.output_prefixes[0]), (std::vector<std::vector<std::vector<int32_t>>>{{tok.encode("hello world")}}));
  EXPECT_FALSE(tok.encode("hello world").empty());
  o.append_eod = true;
  try {
    run_preprocess(o);
    ADD_FAILURE() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--append-eod: the tokenizer"), std::string::npos) << e.what();
  }
  o = opts({d + "/c.json"}, d + "/c");
  o.tokenizer = d + "/tok";
  o.handler = "conversation";
  try {
    run_preprocess(o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("c.json:1: the tokenizer"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("has no EOS piece"), std::string::npos) << e.what();
  }
}

TEST(Preprocess, FirstBadRecordIsNamedAndNoOutputIsLeft) {
  const std::string d = tmp_dir("bad");
  std::ofstream f(d + "/in.jsonl");
  for (int i = 0; i < 500; ++i) f << (i == 321 || i == 400 ? R"({"text": "x",})" : R"({"text": "fine"})") << "\n";
  f.close();
  for (int workers : {1, 2}) {
    PreprocessOptions o = opts({d + "/in.jsonl"}, d + "/out");
    o.workers = workers;
    o.batch_records = 7;
    try {
      run_preprocess(o);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("in.jsonl:322: not valid JSON"), std::string::npos) << e.what();
    }
    for (const auto& e : std::filesystem::directory_iterator(d))
      EXPECT_EQ(e.path().filename().string().find("out"), std::string::npos) << e.path();
  }
}

// A bad record read before the reader itself fails (a structural error later in the file, or in
// a later file) is the first error in input order, so it is the one reported, even when it sits
// in a batch the reader had not yet handed out.
TEST(Preprocess, BadRecordBeforeAReaderErrorIsTheOneNamed) {
  const std::string d = tmp_dir("order");
  std::ofstream(d + "/a.json") << "[\n{\"text\": \"ok\"},\n{\"text\": tru},\n{\"text\": \"c\"} {\"text\": \"d\"}\n]\n";
  std::ofstream(d + "/b.jsonl") << "{\"text\": \"ok\"}\n{\"text\": 1,}\n";
  std::ofstream(d + "/c.json") << "[{\"text\": \"x\"}";  // not closed
  for (int workers : {1, 2}) {
    for (const auto& [in, want] : std::vector<std::pair<std::vector<std::string>, std::string>>{
             {{d + "/a.json"}, "a.json:3: not valid JSON"}, {{d + "/b.jsonl", d + "/c.json"}, "b.jsonl:2: not valid JSON"}}) {
      PreprocessOptions o = opts(in, d + "/out");
      o.workers = workers;
      try {
        run_preprocess(o);
        ADD_FAILURE() << "no error";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
      }
    }
  }
}

// A stop request (SIGINT / SIGTERM in the CLI) ends the run with exit status 130 and nothing left.
TEST(Preprocess, StopRequestLeavesNothing) {
  const std::string d = tmp_dir("stop");
  {
    std::ofstream f(d + "/x.jsonl");
    for (int i = 0; i < 500; ++i) f << "{\"text\": \"record " << i << "\"}\n";
  }
  std::atomic<bool> stop{true};
  PreprocessOptions o = opts({d + "/x.jsonl"}, d + "/o");
  o.stop = &stop;
  try {
    run_preprocess(o);
    ADD_FAILURE() << "not stopped";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 130);
    EXPECT_NE(std::string(e.what()).find("interrupted at " + d + "/x.jsonl:1"), std::string::npos) << e.what();
  }
  for (const auto& e : std::filesystem::directory_iterator(d))
    EXPECT_EQ(e.path().filename().string().rfind("o_", 0), std::string::npos) << "left behind: " << e.path();
  stop = false;  // the same options run to the end
  EXPECT_EQ(run_preprocess(o).documents, 500);
}

TEST(Preprocess, BadOptionsAreUsageErrors) {
  const std::string d = tmp_dir("opts");
  // A missing input, or a directory without inputs, is a data error (exit 1), not a usage error.
  try {
    run_preprocess(opts({d + "/missing.jsonl"}, d + "/o"));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 1) << e.what();
  }
  try {
    run_preprocess(opts({d}, d + "/o"));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 1) << e.what();
  }
  std::ofstream(d + "/x.jsonl") << "{\"text\": \"a\"}\n";
  PreprocessOptions o = opts({d + "/x.jsonl"}, d + "/o");
  o.workers = 0;
  EXPECT_THROW(run_preprocess(o), UsageError);
  o.workers = kMaxWorkers + 1;  // not thousands of threads and tokenizers
  EXPECT_THROW(run_preprocess(o), UsageError);
  EXPECT_FALSE(std::filesystem::exists(d + "/o_text_document.bin.tmp"));
  o = opts({d + "/x.jsonl"}, d + "/o");
  o.json_keys = {"body"};
  EXPECT_THROW(run_preprocess(o), Error);
  o = opts({std::string(CS_SOURCE_DIR) + "/tests/fixtures/parquet/none_plain_v2.parquet"}, d + "/o");
  o.json_keys = {"id"};  // an INT64 column
  try {
    run_preprocess(o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[preprocess] "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("column 'id' holds INT64 values, expected strings"), std::string::npos)
        << e.what();
  }
  o = opts({kParquet}, d + "/o");
  o.json_keys = {"body"};
  try {
    run_preprocess(o);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no column 'body' (the file has: instruction, input, output, text)"),
              std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cs
