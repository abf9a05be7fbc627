// How a source's page reaches the outputs and the store. The documents of a page go
// straight into the direct outputs (the file output) while the page is mapped, and into
// the outbox only when some output delivers from it (stdout, Elasticsearch); then the
// page's state change (watermark, seen-set or file position), its outbox rows and the
// direct outputs' acknowledgements commit in one transaction. A crash before that commit
// leaves bytes the file output cuts off when it opens, and a state that reads the page
// again: exactly once, without the outbox round trip.
//
// Group commit: pages that commit while another commit is under way wait, and the next
// commit takes all of them at once — their lines written to the direct outputs one page
// after another, one fsync of each, one store transaction (one fsync) for all, all or
// nothing. The first page to arrive leads: in a fiber it yields once first, so the pages
// its loop's other fibers are committing join its group. A page that grew past kFlushBytes
// was already written while it was mapped; it commits alone, as before.
//
// Staging: a page's outbox documents are held in memory until its commit while they are
// few (the common case: many sources, small pages; a group commits them in one transaction
// without another write). Once they pass kFlushBytes, and when the store stages, they go
// to the store's staging area in pieces of about that size while the page is mapped (not
// synced), and its commit moves them into the outbox, in order, in the commit's
// transaction: memory holds about one piece of a page, not the whole page. A page
// abandoned or failed drops what it staged (and the store drops what a stopped process
// left staged when it opens): staged documents are never delivered unless their page
// commits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mdecollect/core/result.h"
#include "mdecollect/output/output.h"
#include "mdecollect/state/state_store.h"
#include "mdecollect/telemetry/metrics.h"

namespace mdec::output {

class Delivery {
 public:
  // `direct`: outputs written directly (each has direct(); each must hold every outbox
  // document already); `use_outbox`: some output delivers from the outbox, so documents
  // are stored there too.
  Delivery(state::StateStore& store, std::vector<Output*> direct, bool use_outbox)
      : store_(store), direct_(std::move(direct)), use_outbox_(use_outbox) {}

  // Delivery to nothing but the outbox (tests, and a store without direct outputs).
  explicit Delivery(state::StateStore& store) : Delivery(store, {}, true) {}

  state::StateStore& store() { return store_; }
  // Where documents written directly are counted as delivered (per source and output).
  void setMetrics(telemetry::Metrics* metrics) { metrics_ = metrics; }

  // One page. Not thread-safe; a Page abandoned without commit() leaves no trace in the
  // outputs (their bytes are cut off).
  class Page {
   public:
    // A page of `source`'s documents.
    Page(Delivery& delivery, std::string source)
        : delivery_(delivery), source_(std::move(source)) {}
    ~Page();
    Page(const Page&) = delete;
    Page& operator=(const Page&) = delete;

    void add(std::string_view id, std::string_view body);
    std::size_t documents() const { return documents_; }
    // Makes the documents durable in the direct outputs and commits `commit` (its
    // documents and direct acknowledgements are filled in here).
    Status commit(state::PageCommit commit);

   private:
    Status flush();
    void end(bool committed);
    Status stageOutbox();
    void dropStaged();

    Delivery& delivery_;
    std::string source_;
    std::string buffer_;                      // lines not yet written to the direct outputs
    std::vector<state::NewDocument> outbox_;  // outbox documents not yet staged
    std::size_t outbox_bytes_ = 0;
    std::int64_t staged_page_ = 0;  // the store's staging area for this page (0: none)
    std::uint64_t staged_documents_ = 0;
    std::size_t documents_ = 0;
    bool begun_ = false;  // the direct outputs are held
    std::optional<Error> error_;
  };

  // Pages committed, and store commits made for them (fewer: group commit).
  std::uint64_t pagesCommitted() const;
  std::uint64_t groupsCommitted() const;

  // A group holds at most this many pages.
  static constexpr std::size_t kMaxGroupPages = 512;
  // Lines go to the direct outputs, and outbox documents to the store's staging area, in
  // pieces of about this size.
  static constexpr std::size_t kFlushBytes = 1u << 20;

 private:
  struct Pending;
  Status commitInGroup(const std::shared_ptr<Pending>& page);
  void countDelivered(const std::string& source, std::size_t documents);
  Status commitGroup(const std::vector<std::shared_ptr<Pending>>& group);

  state::StateStore& store_;
  std::vector<Output*> direct_;
  bool use_outbox_;
  telemetry::Metrics* metrics_ = nullptr;

  mutable std::mutex group_mu_;
  std::vector<std::shared_ptr<Pending>> waiting_;  // pages waiting for the next group
  bool committing_ = false;                        // a page's caller is committing groups
  std::uint64_t pages_ = 0;
  std::uint64_t groups_ = 0;
};

}  // namespace mdec::output
