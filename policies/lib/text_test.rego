package weir.lib.text_test

import data.weir.lib.text

test_short_list if {
	text.list({"b", "a"}) == "a, b"
	text.list([]) == ""
}

test_long_list if {
	text.list(["e", "d", "c", "b", "a"]) == "a, b, c and 2 more"
}
