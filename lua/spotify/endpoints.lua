--- The catalog as data: one row per client method. The generic call path
-- in catalog.lua turns each row into a method; adding an endpoint is adding
-- a row.
--
-- Fields:
--   name     method name on the client
--   path     path template below api_base; {id} is the parsed ID
--   id       ID kind the method's first argument must be (see core.parse_id)
--   market   the endpoint takes `market` (the client's default applies)
--   unwrap   return this field of the answer instead of the whole object
--   batch    plural method: {key = answer's array field, max = IDs per request
--            (Spotify's official limits),
--            single = path of the one-ID endpoint used as fallback}
--   fallback path to try when `path` answers 403/404 (tier differences);
--            kept for the client's life once it answers
--   query    name of the query parameter the first argument fills (search)
--   defaults query parameters sent unless opts give them
--   pages    the answer (after unwrap) is a paging object
return {
  { name = "track", path = "/tracks/{id}", id = "track", market = true },
  { name = "tracks", path = "/tracks", id = "track", market = true,
    batch = { key = "tracks", max = 50, single = "/tracks/{id}" } },
  { name = "album", path = "/albums/{id}", id = "album", market = true },
  { name = "albums", path = "/albums", id = "album", market = true,
    batch = { key = "albums", max = 20, single = "/albums/{id}" } },
  { name = "album_tracks", path = "/albums/{id}/tracks", id = "album", market = true, pages = true },
  { name = "artist", path = "/artists/{id}", id = "artist" },
  { name = "artists", path = "/artists", id = "artist",
    batch = { key = "artists", max = 50, single = "/artists/{id}" } },
  { name = "artist_albums", path = "/artists/{id}/albums", id = "artist", market = true, pages = true },
  { name = "artist_top_tracks", path = "/artists/{id}/top-tracks", id = "artist", market = true,
    unwrap = "tracks" },
  { name = "artist_related_artists", path = "/artists/{id}/related-artists", id = "artist",
    unwrap = "artists" },
  { name = "search", path = "/search", query = "q", market = true, defaults = { type = "track" } },
  { name = "playlist", path = "/playlists/{id}", id = "playlist", market = true },
  { name = "playlist_items", path = "/playlists/{id}/items", fallback = "/playlists/{id}/tracks",
    id = "playlist", market = true, pages = true },
  { name = "playlist_images", path = "/playlists/{id}/images", id = "playlist" },
  { name = "user", path = "/users/{id}", id = "user" },
  { name = "user_playlists", path = "/users/{id}/playlists", id = "user", pages = true },
  { name = "categories", path = "/browse/categories", unwrap = "categories", pages = true },
  { name = "category", path = "/browse/categories/{id}", id = "category" },
  { name = "category_playlists", path = "/browse/categories/{id}/playlists", id = "category",
    unwrap = "playlists", pages = true },
  { name = "featured_playlists", path = "/browse/featured-playlists", unwrap = "playlists", pages = true },
  { name = "new_releases", path = "/browse/new-releases", unwrap = "albums", pages = true },
  { name = "markets", path = "/markets", unwrap = "markets" },
  { name = "show", path = "/shows/{id}", id = "show", market = true },
  { name = "shows", path = "/shows", id = "show", market = true,
    batch = { key = "shows", max = 50, single = "/shows/{id}" } },
  { name = "show_episodes", path = "/shows/{id}/episodes", id = "show", market = true, pages = true },
  { name = "episode", path = "/episodes/{id}", id = "episode", market = true },
  { name = "episodes", path = "/episodes", id = "episode", market = true,
    batch = { key = "episodes", max = 50, single = "/episodes/{id}" } },
  { name = "audiobook", path = "/audiobooks/{id}", id = "audiobook", market = true },
  { name = "audiobooks", path = "/audiobooks", id = "audiobook", market = true,
    batch = { key = "audiobooks", max = 50, single = "/audiobooks/{id}" } },
  { name = "audiobook_chapters", path = "/audiobooks/{id}/chapters", id = "audiobook", market = true,
    pages = true },
  { name = "chapter", path = "/chapters/{id}", id = "chapter", market = true },
  { name = "chapters", path = "/chapters", id = "chapter", market = true,
    batch = { key = "chapters", max = 50, single = "/chapters/{id}" } },
  { name = "audio_feature", path = "/audio-features/{id}", id = "track" },
  { name = "audio_features_batch", path = "/audio-features", id = "track",
    batch = { key = "audio_features", max = 100, single = "/audio-features/{id}" } },
  { name = "audio_analysis", path = "/audio-analysis/{id}", id = "track" },
  { name = "recommendations", path = "/recommendations", market = true },
  { name = "genre_seeds", path = "/recommendations/available-genre-seeds", unwrap = "genres" },
}
